"""The answer of a write whose process died after its commit and before it stored the
answer on its Idempotency-Key's record, rebuilt from what the write made.

The claim names the items its transaction wrote (infra/table/idempotency.py); a retry
that finds it pending past `idempotency_lease_seconds` (longer than any request
lives) reads them and answers as the route declares it answers (handlers/declare.py):
the status it declares, and the body of its declared shape, each part the view of
the written item of that kind as it is now (the operation keeps its id; a container
may have moved on since). One table for every route: a shape's parts, not a route's."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, get_type_hints

from typing_extensions import is_typeddict

from handlers import shapes, views
from handlers.declare import Declaration
from infra.table.attributes import Item
from infra.table.backups import backup_from
from infra.table.databases import database_host_from
from infra.table.dynamo import Dynamo
from infra.table.eggs import egg_from
from infra.table.hosts import host_from
from infra.table.operations import operation_from
from infra.table.workloads import workload_from
from shared.errors import Conflict

View = Callable[[Item, datetime], dict[str, Any]]

# An item's `type` -> its view, by the shape that shows it.
VIEWS: dict[Any, tuple[str, View]] = {
    shapes.ContainerView: ("workload", lambda i, now: views.container(workload_from(i), now)),
    shapes.OperationView: ("operation", lambda i, now: views.operation(operation_from(i))),
    shapes.BackupView: ("backup", lambda i, now: views.backup(backup_from(i))),
    shapes.OperatorEggView: ("egg", lambda i, now: views.operator_egg(egg_from(i))),
    shapes.HostView: ("host", lambda i, now: views.host(host_from(i), now)),
    shapes.DatabaseHostView: (
        "database_host",
        lambda i, now: views.database_host(database_host_from(i)),
    ),
}


class AnswerLost(Conflict):
    """The write was done, and its answer cannot be read back (a secret shown once)."""

    default_message = (
        "The request with this Idempotency-Key was carried out, but its answer was lost "
        "and cannot be rebuilt; read the resource it made instead."
    )


def rebuild(
    db: Dynamo, declaration: Declaration | None, wrote: tuple[tuple[str, str], ...], now: datetime
) -> tuple[int, bytes]:
    """The route's answer (status, JSON body) from the items its write made."""
    if declaration is None:
        raise AnswerLost()
    if declaration.shape is None:
        return declaration.status, b""
    items: dict[str, Item] = {}
    if wrote:
        for item in db.get_many(list(dict.fromkeys(wrote))).values():
            items.setdefault(str(item.get("type")), item)

    def view(shape: Any) -> dict[str, Any]:
        if shape not in VIEWS or VIEWS[shape][0] not in items:
            raise AnswerLost()
        kind, render = VIEWS[shape]
        return render(items[kind], now)

    shape = declaration.shape
    if shape in VIEWS:
        body = view(shape)
    elif is_typeddict(shape):  # {"container": ContainerView, "operation": ...}
        body = {name: view(part) for name, part in get_type_hints(shape).items()}
    else:
        raise AnswerLost()
    return declaration.status, json.dumps(body).encode()
