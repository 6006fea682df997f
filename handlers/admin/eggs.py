from __future__ import annotations

import dataclasses

import falcon

from handlers import views
from handlers.body import body_as, path_id
from handlers.deps import Deps
from shared.admin_requests import EggCreate, EggResources, EggUpdate
from shared.capacity import Resources
from shared.errors import BelowMinimum, Conflict, InvalidInput
from shared.models import Egg, Engine
from shared.rules import check_minimums


def _resources(given: EggResources | None, base: Resources) -> Resources:
    return base.merged(given.model_dump(exclude_none=True)) if given else base


def _checked(egg: Egg) -> Egg:
    try:
        check_minimums(egg.defaults, egg)
    except BelowMinimum as exc:
        raise InvalidInput(f"The egg's defaults are below its minimums: {exc.message}") from exc
    return egg


class EggCollection:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = [views.egg(e) for e in self._deps.repo.eggs.list()]

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = body_as(req, EggCreate, self._deps.settings.max_body_bytes)
        minimum = _resources(body.minimum, Resources())
        egg = _checked(
            Egg(
                id=self._deps.new_id(),
                name=body.name,
                description=body.description,
                engine=body.engine,
                image=body.image,
                command=tuple(body.command) if body.command is not None else None,
                environment=dict(body.environment),
                minimum=minimum,
                defaults=_resources(body.defaults, minimum),
                stop_timeout=body.stop_timeout,
                created_at=self._deps.clock(),
                vm=body.vm.stored() if body.vm else {},
            )
        )
        self._deps.repo.eggs.create(egg)
        resp.status = falcon.HTTP_201
        resp.media = views.egg(egg)


class EggItem:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    def on_get(self, req: falcon.Request, resp: falcon.Response, egg_id: str) -> None:
        resp.media = views.egg(self._deps.repo.eggs.get(path_id(egg_id, "Egg")))

    def on_patch(self, req: falcon.Request, resp: falcon.Response, egg_id: str) -> None:
        egg = self._deps.repo.eggs.get(path_id(egg_id, "Egg"))
        body = body_as(req, EggUpdate, self._deps.settings.max_body_bytes)
        if not body.model_fields_set:
            raise InvalidInput("Nothing to change: give at least one field.")
        changes = body.model_dump(
            exclude_none=True, exclude={"minimum", "defaults", "command", "vm"}
        )
        if body.command is not None:
            changes["command"] = tuple(body.command)
        if body.vm is not None:
            if egg.engine != Engine.QEMU:
                raise InvalidInput("vm settings are for qemu eggs only.")
            changes["vm"] = body.vm.stored()
        minimum = _resources(body.minimum, egg.minimum)
        updated = _checked(
            dataclasses.replace(
                egg, **changes, minimum=minimum, defaults=_resources(body.defaults, egg.defaults)
            )
        )
        self._deps.repo.eggs.replace(updated)
        resp.media = views.egg(updated)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, egg_id: str) -> None:
        path_id(egg_id, "Egg")
        allowing = [c.name for c in self._deps.repo.clusters.list() if egg_id in c.egg_ids]
        if allowing:
            raise Conflict(
                f"Egg is allowed in clusters {', '.join(sorted(allowing))}; "
                "remove it from their allow-lists first."
            )
        self._deps.repo.eggs.delete(egg_id)
        resp.status = falcon.HTTP_204
