"""Held host ports: the item `HOST#<host>` / `PORT#<port>` names the workload that holds
the port. It is written only if absent, in the same transaction that places the
workload (or resizes its `ports`), and deleted in the one that releases it: no two
workloads ever hold one port of a host, whatever runs at the same time."""

from __future__ import annotations

from collections.abc import Iterable

from infra.table import schema
from infra.table.attributes import Item
from infra.table.dynamo import Dynamo, TxEntry
from infra.table.expression import Expression
from shared.errors import Conflict, CorralError
from shared.models import Workload


class PortTaken(Conflict):
    """A port chosen for a workload was taken meanwhile by another: choose again."""


def _taken(port: int) -> CorralError:
    return PortTaken(f"Port {port} was taken meanwhile; retry.")


class PortStore:
    def __init__(self, db: Dynamo) -> None:
        self.db = db

    def held(self, host_id: str) -> set[int]:
        """The ports of the host that some workload holds."""
        items = self.db.query(
            schema.host_pk(host_id), sk_prefix=schema.PORT_PREFIX, consistent=True
        )
        return {int(item["port"]) for item in items}

    # -- transaction entries -----------------------------------------------------

    def hold(self, workload: Workload, ports: Iterable[int]) -> list[TxEntry]:
        """Take each port for `workload`; refused (PortTaken) if anyone holds one."""
        return [
            self.db.tx_put(
                _port_item(workload, port),
                Expression().when_absent(),
                on_fail=lambda _, port=port: _taken(port),  # type: ignore[misc]
            )
            for port in ports
        ]

    def free(self, host_id: str, ports: Iterable[int]) -> list[TxEntry]:
        """Give the ports back (already gone is fine: a release is idempotent)."""
        return [
            self.db.tx_delete(schema.host_pk(host_id), schema.port_sk(port), Expression())
            for port in ports
        ]


def _port_item(workload: Workload, port: int) -> Item:
    return {
        "pk": schema.host_pk(workload.host_id),
        "sk": schema.port_sk(port),
        "type": "port",
        "port": port,
        "workload_id": workload.id,
        "cluster_id": workload.cluster_id,
    }
