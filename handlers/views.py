"""Records as the API shows them. The one place that decides field names."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from shared.backups import Backup
from shared.capacity import Resources
from shared.clock import iso, stamp, utc_now
from shared.databases import DatabaseHost, ManagedDatabase
from shared.envs import Env, shown_status
from shared.errors import Failure
from shared.events import Event
from shared.health import NOT_MEASURED, Health, HostLoad, LogLine, format_ns
from shared.models import ApiKey, Cluster, Egg, Engine, Host, Operation, Workload
from shared.vm import Shape, WorkloadVm
from shared.webhooks import DeliveryAttempt, Webhook


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
        "plan": {
            "name": c.plan.name,
            "limits": cluster_totals(c),
            "default_lifetime": c.plan.default_lifetime,
            "max_lifetime": c.plan.max_lifetime,
            "requests_per_minute": c.plan.requests_per_minute,
            "cluster_requests_per_minute": c.plan.cluster_requests_per_minute,
        },
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
        "variables": [v.to_json() for v in e.variables],
        "container_ports": list(e.container_ports),
        "data_path": e.data_path,
        "created_at": stamp(e.created_at),
        **({"vm": e.vm.to_json()} if e.engine == Engine.QEMU else {"data_path": e.data_path}),
    }


def operator_egg(e: Egg) -> dict[str, Any]:
    """An egg as operators see it: whose registry credentials it holds (never the
    password, which no route returns)."""
    auth = {"username": e.registry_auth.username} if e.registry_auth else None
    return egg(e) | {"registry_auth": auth}


ENFORCEMENT_FIELDS = ("cpu_cores", "ram_mb", "storage_mb", "io")


def container(w: Workload, now: datetime | None = None) -> dict[str, Any]:
    return {
        "id": w.id,
        "name": w.name,
        "egg_id": w.egg_id,
        "engine": w.engine.value,
        "status": w.status.value,
        "resources": resources(w.resources),
        "allocations": [a.to_json() for a in w.allocations],
        "enforcement": {
            name: ("enforced" if w.enforced[name] else "accounted")
            for name in ENFORCEMENT_FIELDS
            if name in w.enforced
        },
        "pending_operation": w.pending_op,
        "last_operation": w.last_op,
        **failure(w.failure),
        "expires_at": iso(w.expires_at),
        "restart_policy": w.restart_policy.value,
        "environment": dict(w.environment),
        "health": health(w.health, now),
        "created_at": stamp(w.created_at),
        "updated_at": stamp(w.updated_at),
        **vm_details(w),
    }


def vm_details(w: Workload) -> dict[str, Any]:
    """A VM's own fields (none for a container): what to reach it on, and whether new
    memory or vCPUs wait for a restart."""
    if w.engine != Engine.QEMU:
        return {}
    vm = w.vm or WorkloadVm()
    return {
        "restart_needed": w.restart_needed,
        "vm": {
            "env_id": vm.env_id,
            "ports": list(vm.guest_ports),
            "deny_outgoing": vm.deny_outgoing,
            "ssh_keys": list(vm.ssh_keys),
            "address": vm.address,
            "forwarded_ports": {str(g): h for g, h in sorted(vm.forwarded_ports.items())},
        },
    }


def failure(f: Failure | None) -> dict[str, Any]:
    """What a tenant sees of a failure: a code and plain words, never the host's detail."""
    return {"error": f.message if f else None, "error_code": f.code if f else None}


def failure_detail(f: Failure | None) -> dict[str, Any]:
    """The operator's view adds the host's own words (operator routes only)."""
    return failure(f) | {"error_detail": f.detail if f else None}


def operation(o: Operation) -> dict[str, Any]:
    return {
        "id": o.id,
        "kind": o.kind.value,
        "container_id": o.workload_id or None,  # None: an operator's operation on a host
        "status": o.status.value,
        "params": o.params.to_json(),
        "progress": o.progress,
        **failure(o.failure),
        "created_at": stamp(o.created_at),
        "started_at": iso(o.started_at),
        "finished_at": iso(o.finished_at),
    }


def operator_operation(o: Operation) -> dict[str, Any]:
    """An operation as operators see it: with the host's detail of a failure."""
    return operation(o) | {"cluster_id": o.cluster_id, **failure_detail(o.failure)}


def operator_container(w: Workload, now: datetime | None = None) -> dict[str, Any]:
    """A container as operators see it: where it runs and the host's detail of a failure."""
    return container(w, now) | {
        "cluster_id": w.cluster_id,
        "host_id": w.host_id,
        **failure_detail(w.failure),
    }


def accepted(w: Workload, o: Operation) -> dict[str, Any]:
    return {"container": container(w), "operation": operation(o)}


def host(h: Host, now: datetime | None = None) -> dict[str, Any]:
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
        "public_address": h.public_address,
        "capacity": resources(h.capacity),
        "used": resources(h.used),
        "free": resources(h.capacity - h.used),
        "load": host_load(h.load, now),
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
        "scope": {
            "verbs": list(k.scope.verbs),
            "container_ids": list(k.scope.container_ids)
            if k.scope.container_ids is not None
            else None,
            "egg_ids": list(k.scope.egg_ids) if k.scope.egg_ids is not None else None,
        },
        "expires_at": iso(k.scope.expires_at),
    }
    if secret is not None:
        view["secret"] = secret
    return view


def health(h: Health | None, now: datetime | None = None) -> dict[str, Any]:
    """002's health shape, plus `state`, `stale` and `reason` (see shared/health.py)."""
    now = now or utc_now()
    seen = (h or NOT_MEASURED).as_seen(now)
    return {
        "cpu_percent": seen.cpu_percent,
        "memory_mb": seen.memory_mb,
        "disk_mb": seen.disk_mb,
        "last_heartbeat": int(seen.heartbeat.timestamp()) if seen.heartbeat else None,
        "uptime_secs": seen.uptime_secs,
        "state": seen.state.value,
        "stale": h is None or h.is_stale(now),
        "reason": seen.reason.value if seen.reason else None,
    }


def host_load(load: HostLoad | None, now: datetime | None = None) -> dict[str, Any] | None:
    """What a host's workloads use, as the collector last summed it (None: never)."""
    if load is None:
        return None
    return {
        "cpu_percent": load.cpu_percent,
        "cpu_cores": round(load.cpu_percent / 100, 2),
        "memory_mb": load.memory_mb,
        "disk_mb": load.disk_mb,
        "workloads": load.workloads,
        "measured_at": stamp(load.measured_at),
        "stale": load.is_stale(now or utc_now()),
    }


def log_line(line: LogLine) -> dict[str, Any]:
    return {
        "time": format_ns(line.at_ns) if line.at_ns is not None else None,
        "stream": line.stream,
        "line": line.text,
    }


def logs(container_id: str, lines: list[LogLine], truncated: bool) -> dict[str, Any]:
    return {
        "container_id": container_id,
        "lines": [log_line(line) for line in lines],
        "truncated": truncated,
    }


# -- environments and their VMs (003) ---------------------------------------------


def virtual_machine(w: Workload) -> dict[str, Any]:
    """A VM (operator routes only): the operator's container view plus 003's names
    for its shape."""
    vm = w.vm or WorkloadVm()
    return operator_container(w) | {
        "env_id": vm.env_id,
        "image": vm.image,
        "cpu": Shape.of(w.resources).vcpus,
        "mem": w.resources.ram_mb,
        "disk": w.resources.storage_mb,
    }


def environment(env: Env, workloads: Sequence[Workload]) -> dict[str, Any]:
    by_id = {w.id: w for w in workloads}
    vms = [by_id[vm_id] for vm_id in env.vm_ids if vm_id in by_id]
    return {
        "id": env.id,
        "cluster_id": env.cluster_id,
        "owner": env.owner,
        "ssh_keys": list(env.ssh_keys),
        "lifetime": env.lifetime,
        "status": shown_status(env, vms),
        "created_at": stamp(env.created_at),
        "updated_at": stamp(env.updated_at),
        "expires_at": stamp(env.expires_at),
        "vms": [virtual_machine(w) for w in vms],
    }


def environment_accepted(
    env: Env, workloads: Sequence[Workload], ops: Sequence[Operation]
) -> dict[str, Any]:
    return environment(env, workloads) | {"operations": [operator_operation(o) for o in ops]}


def database_host(h: DatabaseHost) -> dict[str, Any]:
    """A database host as operators see it: never its password."""
    return {
        "id": h.id,
        "name": h.name,
        "engine": h.engine.value,
        "host": h.host,
        "port": h.port,
        "username": h.username,
        "max_databases": h.max_databases,
        "database_count": h.database_count,
        "cluster_ids": list(h.cluster_ids),
        "version": h.server_version,
        "health": h.health.value,
        "health_error": h.health_error,
        "checked_at": iso(h.checked_at),
        "created_at": stamp(h.created_at),
        "updated_at": stamp(h.updated_at),
    }


def managed_database(d: ManagedDatabase) -> dict[str, Any]:
    """001's record, exactly; a failed one adds `error` (plain words). No password."""
    return {
        "id": d.id,
        "cluster_id": d.cluster_id,
        "name": d.name,
        "engine": d.engine.value,
        "version": d.version,
        "status": d.status.value,
        "connection_host": d.connection_host,
        "connection_port": d.connection_port,
        "connection_user": d.connection_user,
        "connection_database": d.connection_database,
        "app_id": d.app_id,
        "created_at": stamp(d.created_at),
        "updated_at": stamp(d.updated_at),
        **({"error": d.failure.message} if d.failure else {}),
    }


def binding(d: ManagedDatabase, o: Operation) -> dict[str, Any]:
    return {"database": managed_database(d), "operation": operation(o)}


def tenant_database(d: ManagedDatabase, password: str | None = None) -> dict[str, Any]:
    """A container's database as its tenant sees it; `password` only when just made or
    rotated (it is shown once)."""
    shown = {
        "id": d.id,
        "name": d.name,
        "engine": d.engine.value,
        "version": d.version,
        "status": d.status.value,
        "connection_host": d.connection_host,
        "connection_port": d.connection_port,
        "connection_user": d.connection_user,
        "connection_database": d.connection_database,
        "error": d.failure.message if d.failure else None,
        "created_at": stamp(d.created_at),
        "updated_at": stamp(d.updated_at),
    }
    return shown | ({"password": password} if password is not None else {})


def backup(b: Backup) -> dict[str, Any]:
    return {
        "id": b.id,
        "container_id": b.workload_id,
        "name": b.name,
        "status": b.status.value,
        "size_bytes": b.size_bytes,
        "checksum": b.checksum,
        "last_operation": b.last_op,
        **failure(b.failure),
        "created_at": stamp(b.created_at),
        "updated_at": stamp(b.updated_at),
    }


def backup_accepted(b: Backup, o: Operation) -> dict[str, Any]:
    return {"backup": backup(b), "operation": operation(o)}


def event(e: Event, cursor: str | None = None) -> dict[str, Any]:
    """An event; `cursor` is its id in a merged feed (the position after it)."""
    return e.to_api(cursor)


def webhook(w: Webhook) -> dict[str, Any]:
    return {
        "id": w.id,
        "cluster_id": w.cluster_id,
        "url": w.url,
        "types": list(w.types),
        "status": w.status.value,
        "disabled_reason": w.disabled_reason,
        "created_at": stamp(w.created_at),
    }


def delivery_attempt(a: DeliveryAttempt) -> dict[str, Any]:
    return {
        "event_id": a.event_id,
        "event_type": a.event_type,
        "at": stamp(a.at),
        "status_code": a.status_code,
        "delivered": a.delivered,
        "error": a.error,
    }
