"""Eggs: the item `EGG#<id>` / `#META`, listed on GSI1 under `EGGS`."""

from __future__ import annotations

from collections.abc import Callable

from infra.table import schema
from infra.table.attributes import Item, moment, resources_attrs, resources_from
from infra.table.dynamo import Dynamo
from infra.table.expression import Expression
from shared.changes import record_change
from shared.clock import iso
from shared.errors import Conflict, NotFound
from shared.images import SealedRegistryAuth
from shared.models import Egg, Engine
from shared.runtime import DEFAULT_DATA_PATH
from shared.variables import EggVariable
from shared.vm import VmBoot


def egg_item(e: Egg) -> Item:
    return {
        "pk": schema.egg_pk(e.id),
        "sk": schema.META,
        "gsi1pk": schema.ALL_EGGS,
        "gsi1sk": e.id,
        "type": "egg",
        "id": e.id,
        "name": e.name,
        "description": e.description,
        "engine": e.engine.value,
        "image": e.image,
        "command": list(e.command) if e.command is not None else None,
        "environment": dict(e.environment),
        **resources_attrs("min", e.minimum),
        **resources_attrs("def", e.defaults),
        "stop_timeout": e.stop_timeout,
        "created_at": iso(e.created_at),
        "vm": e.vm.to_json() or None,
        "variables": [v.to_json() for v in e.variables] or None,
        "container_ports": list(e.container_ports) or None,
        "data_path": e.data_path,
        "registry_auth": e.registry_auth.to_json() if e.registry_auth else None,
    }


def egg_from(item: Item) -> Egg:
    command = item.get("command")
    auth = item.get("registry_auth")
    return Egg(
        id=item["id"],
        name=item["name"],
        description=item.get("description", ""),
        engine=Engine(item["engine"]),
        image=item["image"],
        command=tuple(command) if command is not None else None,
        environment=dict(item.get("environment", {})),
        minimum=resources_from("min", item),
        defaults=resources_from("def", item),
        stop_timeout=int(item.get("stop_timeout", 10)),
        created_at=moment(item["created_at"]),
        vm=VmBoot.from_json(item.get("vm") or {}),
        variables=tuple(EggVariable.from_json(v) for v in item.get("variables") or ()),
        container_ports=tuple(int(p) for p in item.get("container_ports") or ()),
        data_path=item.get("data_path", DEFAULT_DATA_PATH),
        registry_auth=SealedRegistryAuth.from_json(auth) if auth else None,
    )


class EggStore:
    def __init__(self, db: Dynamo, on_change: Callable[[], None] | None = None) -> None:
        self.db = db
        # Called once an egg was replaced or deleted (what a process holds of eggs is
        # dropped: infra.table.repository.CreateReadsCache).
        self._on_change = on_change or (lambda: None)

    def get(self, egg_id: str) -> Egg:
        item = self.db.get(schema.egg_pk(egg_id), schema.META)
        if item is None:
            raise NotFound("Egg not found.")
        return egg_from(item)

    def list(self) -> list[Egg]:
        return [egg_from(i) for i in self.db.query(schema.ALL_EGGS, index=schema.GSI1)]

    def create(self, egg: Egg) -> None:
        change = record_change("egg", "created", egg.id, None, {"name": egg.name})
        self.db.put_new(egg_item(egg), Conflict("Egg already exists."), [change])

    def replace(self, egg: Egg) -> None:
        entry = self.db.tx_put(
            egg_item(egg),
            Expression().when_exists(),
            on_fail=lambda _: NotFound("Egg not found."),
        )
        change = record_change("egg", "updated", egg.id, None, {"name": egg.name})
        self.db.transact([entry], events=[change])
        self._on_change()

    def delete(self, egg_id: str) -> None:
        self.db.delete(
            schema.egg_pk(egg_id),
            schema.META,
            Expression().when_exists(),
            on_fail=lambda _: NotFound("Egg not found."),
            events=[record_change("egg", "deleted", egg_id, None)],
        )
        self._on_change()
