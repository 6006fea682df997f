"""Records as the API shows them. The one place that decides field names."""

from __future__ import annotations

from typing import Any

from shared.capacity import Resources
from shared.clock import iso, stamp
from shared.models import ApiKey, Cluster, Egg, Host, Operation, Workload


def resources(res: Resources) -> dict[str, Any]:
    return res.to_api()


def cluster_totals(cluster: Cluster) -> dict[str, Any]:
    return {**resources(cluster.plan.limits), "containers": cluster.plan.max_containers}


def cluster_used(cluster: Cluster) -> dict[str, Any]:
    return {**resources(cluster.used), "containers": cluster.container_count}


def cluster_remaining(cluster: Cluster) -> dict[str, Any]:
    return {
        **resources(cluster.remaining),
        "containers": cluster.plan.max_containers - cluster.container_count,
    }


def capacity(cluster: Cluster) -> dict[str, Any]:
    return {"totals": cluster_totals(cluster), "used": cluster_used(cluster)}


def cluster(c: Cluster) -> dict[str, Any]:
    return {
        "id": c.id,
        "name": c.name,
        "status": c.status.value,
        "plan": {"name": c.plan.name, "limits": cluster_totals(c)},
        "totals": cluster_totals(c),
        "used": cluster_used(c),
        "remaining": cluster_remaining(c),
        "egg_ids": list(c.egg_ids),
        "created_at": stamp(c.created_at),
        "updated_at": stamp(c.updated_at),
    }


def egg(e: Egg) -> dict[str, Any]:
    return {
        "id": e.id,
        "name": e.name,
        "description": e.description,
        "engine": e.engine.value,
        "image": e.image,
        "command": list(e.command) if e.command is not None else None,
        "environment": dict(e.environment),
        "minimum": resources(e.minimum),
        "defaults": resources(e.defaults),
        "stop_timeout": e.stop_timeout,
        "created_at": stamp(e.created_at),
    }


ENFORCEMENT_FIELDS = ("cpu_cores", "ram_mb", "storage_mb", "io")


def container(w: Workload) -> dict[str, Any]:
    return {
        "id": w.id,
        "name": w.name,
        "egg_id": w.egg_id,
        "engine": w.engine.value,
        "status": w.status.value,
        "resources": resources(w.resources),
        "enforcement": {
            name: ("enforced" if w.enforced[name] else "accounted")
            for name in ENFORCEMENT_FIELDS
            if name in w.enforced
        },
        "pending_operation": w.pending_op,
        "last_operation": w.last_op,
        "error": w.error,
        "expires_at": iso(w.expires_at),
        "created_at": stamp(w.created_at),
        "updated_at": stamp(w.updated_at),
    }


def operation(o: Operation) -> dict[str, Any]:
    return {
        "id": o.id,
        "kind": o.kind.value,
        "container_id": o.workload_id,
        "status": o.status.value,
        "params": o.params,
        "error": o.error,
        "created_at": stamp(o.created_at),
        "started_at": iso(o.started_at),
        "finished_at": iso(o.finished_at),
    }


def accepted(w: Workload, o: Operation) -> dict[str, Any]:
    return {"container": container(w), "operation": operation(o)}


def host(h: Host) -> dict[str, Any]:
    return {
        "id": h.id,
        "name": h.name,
        "driver": h.driver.value,
        "address": h.address,
        "engines": [e.value for e in h.engines],
        "status": h.status.value,
        "health": h.health.value,
        "draining": h.draining,
        "labels": dict(h.labels),
        "port_range": list(h.port_range) if h.port_range else None,
        "capacity": resources(h.capacity),
        "used": resources(h.used),
        "free": resources(h.capacity - h.used),
        "workload_count": h.workload_count,
        "last_heartbeat": iso(h.last_heartbeat),
        "created_at": stamp(h.created_at),
        "updated_at": stamp(h.updated_at),
    }


def api_key(k: ApiKey, secret: str | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": k.id,
        "name": k.name,
        "prefix": k.prefix,
        "masked": f"{k.prefix}{'*' * 8}",
        "cluster_id": k.cluster_id,
        "created_at": stamp(k.created_at),
        "last_used_at": iso(k.last_used_at),
        "revoked": k.revoked,
    }
    if secret is not None:
        view["secret"] = secret
    return view
