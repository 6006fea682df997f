"""Health and load <-> the map attributes that hold them: `health` on a workload item,
`load` on a host item. Written by the collector alone, never with a version bump, so
that a measurement never collides with an operation's conditional writes."""

from __future__ import annotations

from typing import Any

from shared.clock import iso, parse_iso
from shared.health import Health, HealthState, HostLoad, UnknownReason

Item = dict[str, Any]


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
