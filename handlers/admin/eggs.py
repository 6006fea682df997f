from __future__ import annotations

import falcon

from handlers import views
from handlers.body import body_as, path_id
from handlers.deps import Deps
from shared.admin_requests import EggCreate
from shared.capacity import Resources
from shared.errors import InvalidInput
from shared.models import Egg
from shared.rules import check_minimums


class EggCollection:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = [views.egg(e) for e in self._deps.repo.list_eggs()]

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = body_as(req, EggCreate, self._deps.settings.max_body_bytes)
        minimum = Resources.from_api(body.minimum.model_dump(exclude_none=True))
        defaults = minimum.merged(body.defaults.model_dump(exclude_none=True))
        egg = Egg(
            id=self._deps.new_id(),
            name=body.name,
            description=body.description,
            engine=body.engine,
            image=body.image,
            command=tuple(body.command) if body.command is not None else None,
            environment=dict(body.environment),
            minimum=minimum,
            defaults=defaults,
            stop_timeout=body.stop_timeout,
            created_at=self._deps.clock(),
        )
        try:
            check_minimums(defaults, egg)
        except Exception as exc:
            raise InvalidInput(f"The egg's defaults are below its minimums: {exc}") from exc
        self._deps.repo.create_egg(egg)
        resp.status = falcon.HTTP_201
        resp.media = views.egg(egg)


class EggItem:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    def on_get(self, req: falcon.Request, resp: falcon.Response, egg_id: str) -> None:
        resp.media = views.egg(self._deps.repo.get_egg(path_id(egg_id, "Egg")))
