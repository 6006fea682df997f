"""What each kind of change says in its event (shared.events.Change): built from the
domain records by the transactions that make the change (infra.table.repository and
the stores). Tenants read their cluster's events, so nothing here names a host."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.clock import iso
from shared.events import Change
from shared.models import FLEET_OPERATIONS, ApiKey, Operation, Workload


def _log_of(cluster_id: str | None) -> str | None:
    return None if cluster_id in (None, FLEET_OPERATIONS) else cluster_id


def workload_state(workload: Workload) -> dict[str, Any]:
    return {
        "name": workload.name,
        "status": workload.status.value,
        "egg_id": workload.egg_id,
        "resources": workload.resources.to_api(),
        "expires_at": iso(workload.expires_at),
    }


def workload_change(
    what: str,
    workload: Workload,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> Change:
    return Change(f"workload.{what}", "workload", workload.id, workload.cluster_id, before, after)


def workload_fields_change(workload: Workload, fields: Mapping[str, Any]) -> Change:
    """workload.updated: the fields that change, as they were and as they will be."""
    current = workload_state(workload)
    before = {name: current.get(name) for name in fields}
    return workload_change("updated", workload, before, dict(fields))


def operation_change(operation: Operation, what: str | None = None) -> Change:
    """operation.<status> (or `what`): its kind, container and status."""
    after: dict[str, Any] = {
        "kind": operation.kind.value,
        "container_id": operation.workload_id or None,
        "status": operation.status.value,
    }
    if operation.failure is not None:
        after["error"] = {"code": operation.failure.code, "message": operation.failure.message}
    return Change(
        f"operation.{what or operation.status.value}",
        "operation",
        operation.id,
        _log_of(operation.cluster_id),
        None,
        after,
    )


def key_change(what: str, key: ApiKey) -> Change:
    return Change(
        f"key.{what}", "key", key.id, key.cluster_id, None, {"name": key.name, "prefix": key.prefix}
    )


def record_change(
    kind: str,
    what: str,
    resource_id: str,
    cluster_id: str | None,
    after: Mapping[str, Any] | None = None,
    before: Mapping[str, Any] | None = None,
) -> Change:
    """Any other kind's change (cluster, host, database, backup, env, egg)."""
    return Change(f"{kind}.{what}", kind, resource_id, _log_of(cluster_id), before, after)
