"""Records <-> DynamoDB items. Resource vectors are stored flat (`used_ram_mb`, `lim_ram_mb`)
so that conditions and counters can address each one."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from infra import schema
from infra.health_codec import health_attr, health_from, load_attr, load_from
from shared.capacity import Resources
from shared.clock import iso, parse_iso, sortable
from shared.models import (
    ApiKey,
    Cluster,
    ClusterStatus,
    DriverKind,
    Egg,
    Engine,
    Host,
    HostStatus,
    Operation,
    OperationParams,
    Plan,
    RestartPolicy,
    Workload,
)
from shared.states import OperationKind, OperationStatus, WorkloadStatus
from shared.vm import VmBoot, WorkloadVm

Item = dict[str, Any]

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def to_wire(item: Item) -> dict[str, Any]:
    """A plain item as DynamoDB's typed JSON; None values are left out."""
    return {k: _serializer.serialize(_storable(v)) for k, v in item.items() if v is not None}


def wire_values(values: Item) -> dict[str, Any]:
    return {k: _serializer.serialize(_storable(v)) for k, v in values.items()}


def _storable(value: Any) -> Any:
    """DynamoDB numbers are decimals: floats go through their shortest repr."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(v) for v in value]
    return value


def from_wire(wire: dict[str, Any]) -> Item:
    return {k: _plain(_deserializer.deserialize(v)) for k, v in wire.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def resources_attrs(prefix: str, res: Resources) -> Item:
    return {f"{prefix}_{name}": value for name, value in res.items()}


def resources_from(prefix: str, item: Item) -> Resources:
    return Resources(
        **{name: int(item.get(f"{prefix}_{name}", 0)) for name, _ in Resources().items()}
    )


# -- clusters ---------------------------------------------------------------


def cluster_item(c: Cluster) -> Item:
    return {
        "pk": schema.cluster_pk(c.id),
        "sk": schema.META,
        "gsi1pk": schema.ALL_CLUSTERS,
        "gsi1sk": c.id,
        "type": "cluster",
        "id": c.id,
        "name": c.name,
        "status": c.status.value,
        "plan_name": c.plan.name,
        "max_containers": c.plan.max_containers,
        "plan_default_lifetime": c.plan.default_lifetime,
        "plan_max_lifetime": c.plan.max_lifetime,
        **resources_attrs("lim", c.plan.limits),
        **resources_attrs("used", c.used),
        "container_count": c.container_count,
        "egg_ids": list(c.egg_ids),
        "key_count": c.key_count,
        "created_at": iso(c.created_at),
        "updated_at": iso(c.updated_at),
        "version": c.version,
    }


def cluster_from(item: Item) -> Cluster:
    return Cluster(
        id=item["id"],
        name=item["name"],
        status=ClusterStatus(item["status"]),
        plan=Plan(
            name=item["plan_name"],
            limits=resources_from("lim", item),
            max_containers=int(item["max_containers"]),
            default_lifetime=_int_or_none(item.get("plan_default_lifetime")),
            max_lifetime=_int_or_none(item.get("plan_max_lifetime")),
        ),
        used=resources_from("used", item),
        container_count=int(item["container_count"]),
        egg_ids=tuple(item.get("egg_ids", [])),
        key_count=int(item.get("key_count", 0)),
        created_at=_when(item["created_at"]),
        updated_at=_when(item["updated_at"]),
        version=int(item["version"]),
    )


# -- eggs -------------------------------------------------------------------


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
    }


def egg_from(item: Item) -> Egg:
    command = item.get("command")
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
        created_at=_when(item["created_at"]),
        vm=VmBoot.from_json(item.get("vm") or {}),
    )


# -- hosts ------------------------------------------------------------------


def host_item(h: Host) -> Item:
    return {
        "pk": schema.host_pk(h.id),
        "sk": schema.META,
        "gsi1pk": schema.ALL_HOSTS,
        "gsi1sk": h.id,
        "type": "host",
        "id": h.id,
        "name": h.name,
        "driver": h.driver.value,
        "address": h.address,
        "engines": [e.value for e in h.engines],
        **resources_attrs("cap", h.capacity),
        **resources_attrs("used", h.used),
        "workload_count": h.workload_count,
        "status": h.status.value,
        "labels": dict(h.labels),
        "tls": dict(h.tls),
        "created_at": iso(h.created_at),
        "updated_at": iso(h.updated_at),
        "last_heartbeat": iso(h.last_heartbeat),
        "health": h.health.value,
        "draining": h.draining,
        "images": list(h.images),
        "ssh": dict(h.ssh),
        "port_range": list(h.port_range) if h.port_range else None,
        "load": load_attr(h.load),
        "version": h.version,
    }


def host_from(item: Item) -> Host:
    return Host(
        id=item["id"],
        name=item["name"],
        driver=DriverKind(item["driver"]),
        address=item["address"],
        engines=tuple(Engine(e) for e in item.get("engines", [])),
        capacity=resources_from("cap", item),
        used=resources_from("used", item),
        workload_count=int(item.get("workload_count", 0)),
        status=HostStatus(item["status"]),
        labels=dict(item.get("labels", {})),
        tls=dict(item.get("tls", {})),
        created_at=_when(item["created_at"]),
        updated_at=_when(item["updated_at"]),
        last_heartbeat=parse_iso(item.get("last_heartbeat")),
        health=HostStatus(item.get("health", HostStatus.READY.value)),
        draining=bool(item.get("draining", False)),
        images=tuple(item.get("images", [])),
        ssh=dict(item.get("ssh", {})),
        port_range=_port_range(item.get("port_range")),
        load=load_from(item.get("load")),
        version=int(item.get("version", 1)),
    )


def _port_range(value: list[int] | None) -> tuple[int, int] | None:
    return (int(value[0]), int(value[1])) if value else None


# -- workloads --------------------------------------------------------------


def workload_item(w: Workload) -> Item:
    return {
        "pk": schema.cluster_pk(w.cluster_id),
        "sk": schema.workload_sk(w.id),
        "gsi1pk": schema.host_pk(w.host_id),
        "gsi1sk": schema.workload_sk(w.id),
        "type": "workload",
        "id": w.id,
        "cluster_id": w.cluster_id,
        "name": w.name,
        "egg_id": w.egg_id,
        "engine": w.engine.value,
        "host_id": w.host_id,
        **resources_attrs("res", w.resources),
        "status": w.status.value,
        "pending_op": w.pending_op,
        "last_op": w.last_op,
        "error": w.error,
        "enforced": dict(w.enforced),
        "expires_at": iso(w.expires_at),
        **expiry_keys(w.id, w.expires_at if not w.status.is_gone else None),
        "restart_policy": w.restart_policy.value,
        "health": health_attr(w.health),
        "vm": w.vm.to_json() if w.vm is not None else None,
        "restart_needed": w.restart_needed or None,
        "created_at": iso(w.created_at),
        "updated_at": iso(w.updated_at),
        "version": w.version,
    }


def workload_from(item: Item) -> Workload:
    return Workload(
        id=item["id"],
        cluster_id=item["cluster_id"],
        name=item["name"],
        egg_id=item["egg_id"],
        engine=Engine(item["engine"]),
        host_id=item["host_id"],
        resources=resources_from("res", item),
        status=WorkloadStatus(item["status"]),
        pending_op=item.get("pending_op"),
        last_op=item.get("last_op"),
        error=item.get("error"),
        enforced={k: bool(v) for k, v in item.get("enforced", {}).items()},
        expires_at=parse_iso(item.get("expires_at")),
        restart_policy=RestartPolicy(item.get("restart_policy", RestartPolicy.NEVER.value)),
        health=health_from(item.get("health")),
        vm=WorkloadVm.from_json(item["vm"]) if item.get("vm") else None,
        restart_needed=bool(item.get("restart_needed", False)),
        created_at=_when(item["created_at"]),
        updated_at=_when(item["updated_at"]),
        version=int(item["version"]),
    )


# -- operations -------------------------------------------------------------


def operation_item(o: Operation) -> Item:
    return {
        "pk": schema.cluster_pk(o.cluster_id),
        "sk": schema.operation_sk(o.id),
        "type": "operation",
        "id": o.id,
        "cluster_id": o.cluster_id,
        "workload_id": o.workload_id,
        "kind": o.kind.value,
        "params": o.params.to_json(),
        "status": o.status.value,
        "error": o.error,
        "created_at": iso(o.created_at),
        "updated_at": iso(o.updated_at),
        "started_at": iso(o.started_at),
        "finished_at": iso(o.finished_at),
        **(pending_keys(o.id, o.created_at) if not o.status.is_finished else {}),
    }


def operation_from(item: Item) -> Operation:
    return Operation(
        id=item["id"],
        cluster_id=item["cluster_id"],
        workload_id=item["workload_id"],
        kind=OperationKind(item["kind"]),
        params=OperationParams.from_json(item.get("params", {})),
        status=OperationStatus(item["status"]),
        error=item.get("error"),
        created_at=_when(item["created_at"]),
        updated_at=_when(item["updated_at"]),
        started_at=parse_iso(item.get("started_at")),
        finished_at=parse_iso(item.get("finished_at")),
    )


# -- keys -------------------------------------------------------------------


def key_item(k: ApiKey) -> Item:
    return {
        "pk": schema.key_pk(k.key_hash),
        "sk": schema.META,
        "gsi1pk": schema.keys_of(k.cluster_id),
        "gsi1sk": k.id,
        "type": "key",
        "id": k.id,
        "cluster_id": k.cluster_id,
        "name": k.name,
        "prefix": k.prefix,
        "key_hash": k.key_hash,
        "created_at": iso(k.created_at),
        "last_used_at": iso(k.last_used_at),
        "revoked": k.revoked,
    }


def key_from(item: Item) -> ApiKey:
    return ApiKey(
        id=item["id"],
        cluster_id=item.get("cluster_id"),
        name=item["name"],
        prefix=item["prefix"],
        key_hash=item["key_hash"],
        created_at=_when(item["created_at"]),
        last_used_at=parse_iso(item.get("last_used_at")),
        revoked=bool(item.get("revoked", False)),
    )


def expiry_keys(workload_id: str, expires_at: datetime | None) -> Item:
    """GSI2 keys that put a workload in the expiry index (none: not in it)."""
    if expires_at is None:
        return {}
    return {
        "gsi2pk": schema.expiry_pk(schema.shard_of(workload_id)),
        "gsi2sk": f"{sortable(expires_at)}#{workload_id}",
    }


def pending_keys(operation_id: str, created_at: datetime) -> Item:
    """GSI2 keys that list an unfinished operation for the reconciler."""
    return {
        "gsi2pk": schema.pending_pk(schema.shard_of(operation_id)),
        "gsi2sk": f"{sortable(created_at)}#{operation_id}",
    }


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _when(text: str) -> Any:
    moment = parse_iso(text)
    assert moment is not None
    return moment
