"""What an operator's change to an egg means: its resources checked against its own
minimums, its VM settings only on qemu eggs, no delete while a cluster allows it."""

from __future__ import annotations

import dataclasses

from services.deps import Deps
from shared.admin_requests import (
    EggCreate,
    EggResources,
    EggUpdate,
    RegistryAuthBody,
    check_container_image,
)
from shared.capacity import Resources
from shared.errors import BelowMinimum, Conflict, InvalidInput
from shared.images import SealedRegistryAuth
from shared.models import Egg, Engine
from shared.rules import check_minimums
from shared.sealing import seal
from shared.vm import VmBoot


class EggService:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._repo = deps.repo

    def create(self, body: EggCreate) -> Egg:
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
                vm=body.vm.boot() if body.vm else VmBoot(),
                variables=body.declared(),
                container_ports=tuple(body.container_ports),
                data_path=body.data_path,
                registry_auth=self._sealed(body.registry_auth),
            )
        )
        self._repo.eggs.create(egg)
        return egg

    def update(self, egg: Egg, body: EggUpdate) -> Egg:
        if not body.model_fields_set:
            raise InvalidInput("Nothing to change: give at least one field.")
        changes = body.model_dump(
            exclude_none=True,
            exclude={
                "minimum",
                "defaults",
                "command",
                "vm",
                "container_ports",
                "registry_auth",
                "variables",
            },
        )
        declared = body.declared()
        if declared is not None:
            if declared and egg.engine != Engine.DOCKER:
                raise InvalidInput("variables are for docker eggs only.")
            changes["variables"] = declared
        if "registry_auth" in body.model_fields_set:
            if egg.engine != Engine.DOCKER and body.registry_auth is not None:
                raise InvalidInput("registry_auth is for docker eggs only.")
            changes["registry_auth"] = self._sealed(body.registry_auth)
        if body.command is not None:
            changes["command"] = tuple(body.command)
        if body.container_ports is not None:
            changes["container_ports"] = tuple(body.container_ports)
        if body.image is not None and egg.engine == Engine.DOCKER:
            try:
                check_container_image(body.image)
            except ValueError as exc:
                raise InvalidInput(f"image: {exc}.") from exc
        if body.vm is not None:
            if egg.engine != Engine.QEMU:
                raise InvalidInput("vm settings are for qemu eggs only.")
            changes["vm"] = body.vm.boot()
        minimum = _resources(body.minimum, egg.minimum)
        updated = _checked(
            dataclasses.replace(
                egg, **changes, minimum=minimum, defaults=_resources(body.defaults, egg.defaults)
            )
        )
        self._repo.eggs.replace(updated)
        return updated

    def _sealed(self, auth: RegistryAuthBody | None) -> SealedRegistryAuth | None:
        if auth is None:
            return None
        key = self._deps.settings.secret_key
        if key is None:
            raise InvalidInput(
                "This Corral has no CORRAL_SECRET_KEY, so it cannot store registry_auth; "
                "the operator must set one."
            )
        return SealedRegistryAuth(auth.username, seal(key, auth.password))

    def delete(self, egg_id: str) -> None:
        allowing = [c.name for c in self._repo.clusters.list() if egg_id in c.egg_ids]
        if allowing:
            raise Conflict(
                f"Egg is allowed in clusters {', '.join(sorted(allowing))}; "
                "remove it from their allow-lists first."
            )
        self._repo.eggs.delete(egg_id)


def _resources(given: EggResources | None, base: Resources) -> Resources:
    return base.merged(given.model_dump(exclude_none=True)) if given else base


def _checked(egg: Egg) -> Egg:
    try:
        check_minimums(egg.defaults, egg)
    except BelowMinimum as exc:
        raise InvalidInput(f"The egg's defaults are below its minimums: {exc.message}") from exc
    return egg
