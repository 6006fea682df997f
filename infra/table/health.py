"""Measurements: the `health` map on a workload item and the `load` map on a host item,
and the collector's writes of them. Neither write bumps `version` or `updated_at`: a
measurement is not a change of intent, and must never make an operation's conditional
write fail."""

from __future__ import annotations

from infra.table import schema
from infra.table.attributes import Item
from infra.table.dynamo import Dynamo
from infra.table.expression import Expression
from shared.clock import iso, parse_iso
from shared.errors import Conflict, NotFound
from shared.health import Health, HealthState, HostLoad, UnknownReason


def health_attr(health: Health | None) -> Item | None:
    if health is None:
        return None
    attr: Item = {
        "state": health.state.value,
        "heartbeat": iso(health.heartbeat),
        "fresh_until": iso(health.fresh_until),
        "cpu_percent": float(health.cpu_percent),
        "memory_mb": health.memory_mb,
        "disk_mb": health.disk_mb,
        "uptime_secs": health.uptime_secs,
        "reason": health.reason.value if health.reason else None,
        "cpu_ns": health.cpu_ns,
        "sampled_ns": health.sampled_ns,
        "started_ns": health.started_ns,
    }
    return {name: value for name, value in attr.items() if value is not None}


def health_from(attr: Item | None) -> Health | None:
    if not attr:
        return None
    reason = attr.get("reason")
    started = attr.get("started_ns")
    return Health(
        state=HealthState(attr["state"]),
        heartbeat=parse_iso(attr.get("heartbeat")),
        fresh_until=parse_iso(attr.get("fresh_until")),
        cpu_percent=float(attr.get("cpu_percent", 0)),
        memory_mb=int(attr.get("memory_mb", 0)),
        disk_mb=int(attr.get("disk_mb", 0)),
        uptime_secs=int(attr.get("uptime_secs", 0)),
        reason=UnknownReason(reason) if reason else None,
        cpu_ns=int(attr.get("cpu_ns", 0)),
        sampled_ns=int(attr.get("sampled_ns", 0)),
        started_ns=int(started) if started is not None else None,
    )


def load_attr(load: HostLoad | None) -> Item | None:
    if load is None:
        return None
    return {
        "cpu_percent": float(load.cpu_percent),
        "memory_mb": load.memory_mb,
        "disk_mb": load.disk_mb,
        "workloads": load.workloads,
        "measured_at": iso(load.measured_at),
        "fresh_until": iso(load.fresh_until),
    }


def load_from(attr: Item | None) -> HostLoad | None:
    if not attr:
        return None
    measured_at = parse_iso(attr.get("measured_at"))
    fresh_until = parse_iso(attr.get("fresh_until"))
    if measured_at is None or fresh_until is None:
        return None
    return HostLoad(
        cpu_percent=float(attr.get("cpu_percent", 0)),
        memory_mb=int(attr.get("memory_mb", 0)),
        disk_mb=int(attr.get("disk_mb", 0)),
        workloads=int(attr.get("workloads", 0)),
        measured_at=measured_at,
        fresh_until=fresh_until,
    )


class HealthStore:
    def __init__(self, db: Dynamo) -> None:
        self.db = db

    def record_workload(
        self, cluster_id: str, workload_id: str, health: Health, *, sample: bool = False
    ) -> bool:
        """Store `health` on the workload. With `sample`, only when it is newer than the
        stored sample (two collectors racing keep the latest). False when not stored:
        the workload is gone, or a newer sample is there."""
        write = Expression().set("health", health_attr(health)).when_exists()
        if sample:
            stored = write.name("health.sampled_ns")
            write.when(
                f"attribute_not_exists({stored}) OR {stored} < {write.value(health.sampled_ns)}"
            )
        try:
            self.db.update(
                schema.cluster_pk(cluster_id),
                schema.workload_sk(workload_id),
                write,
                on_fail=lambda _: Conflict("not stored"),
            )
        except Conflict:
            return False
        return True

    def record_host_load(self, host_id: str, load: HostLoad) -> None:
        write = Expression().set("load", load_attr(load)).when_exists()
        self.db.update(
            schema.host_pk(host_id),
            schema.META,
            write,
            on_fail=lambda _: NotFound("Host not found."),
        )
