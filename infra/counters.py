"""Counter updates for transactions: a cluster's and a host's `used_*` counters move
with the workloads they hold. Growth is guarded as `used <= limit - growth` against the
limit that was read (and the limit itself must be unchanged), so no interleaving of
requests can over-commit; a failed guard is explained from the item as it was."""

from __future__ import annotations

from collections.abc import Callable

from infra import codec, schema
from infra.codec import Item
from infra.dynamo import Dynamo, TxEntry
from shared.capacity import Resources, shortfall, shortfall_message
from shared.errors import (
    CapacityExceeded,
    Conflict,
    ContainerLimitReached,
    CorralError,
    InvalidCluster,
    NoHostAvailable,
    NotFound,
)
from shared.models import Cluster, ClusterStatus, Host, HostStatus, Workload
from shared.placement import HOST_DIMENSIONS


def cluster_counters(
    db: Dynamo, cluster: Cluster, delta: Resources, count: int, now: str | None
) -> TxEntry:
    limits = cluster.plan.limits
    conditions = ["#status = :active"]
    values: Item = {":active": ClusterStatus.ACTIVE.value, ":now": now}
    for name, grow in delta.items():
        if grow > 0:
            conditions.append(f"used_{name} <= :ceil_{name} AND lim_{name} = :lim_{name}")
            values[f":ceil_{name}"] = getattr(limits, name) - grow
            values[f":lim_{name}"] = getattr(limits, name)
    if count > 0:
        conditions.append("container_count <= :ceil_count AND max_containers = :max")
        values[":ceil_count"] = cluster.plan.max_containers - count
        values[":max"] = cluster.plan.max_containers

    def refuse(old: Item | None) -> CorralError:
        if old is None:
            return NotFound("Cluster not found.")
        current = codec.cluster_from(old)
        if current.status != ClusterStatus.ACTIVE:
            return InvalidCluster(f"Cluster is {current.status.value}.")
        if (
            current.plan.limits != limits
            or current.plan.max_containers != cluster.plan.max_containers
        ):
            return Conflict("The cluster's plan changed; retry.")
        short = shortfall(current.plan.limits, current.used, delta.positive_part())
        if short:
            return CapacityExceeded(shortfall_message(short))
        if count > 0 and current.container_count + count > current.plan.max_containers:
            return ContainerLimitReached(
                f"Cluster already has the maximum of {current.plan.max_containers} containers."
            )
        return Conflict("The cluster changed; retry.")

    return _counters(
        db,
        schema.cluster_pk(cluster.id),
        delta,
        "container_count",
        count,
        now,
        " AND ".join(conditions),
        values,
        {"#status": "status"},
        refuse,
    )


def host_counters(db: Dynamo, host: Host, delta: Resources, count: int, now: str | None) -> TxEntry:
    conditions = ["#status = :ready"]
    values: Item = {":ready": HostStatus.READY.value, ":now": now}
    for name in HOST_DIMENSIONS:
        grow = getattr(delta, name)
        if grow > 0:
            conditions.append(f"used_{name} <= :ceil_{name} AND cap_{name} = :cap_{name}")
            values[f":ceil_{name}"] = getattr(host.capacity, name) - grow
            values[f":cap_{name}"] = getattr(host.capacity, name)
    if not any(getattr(delta, n) > 0 for n in HOST_DIMENSIONS) and count == 0:
        conditions = ["attribute_exists(pk)"]
        values.pop(":ready")

    def refuse(old: Item | None) -> CorralError:
        if old is None:
            return NoHostAvailable("The chosen host was removed; retry.")
        current = codec.host_from(old)
        if current.status != HostStatus.READY:
            return NoHostAvailable(f"Host {current.name} is {current.status.value}; retry.")
        short = shortfall(current.capacity, current.used, delta.positive_part())
        if short:
            return NoHostAvailable(shortfall_message(short, f"host {current.name}"))
        return Conflict("The host changed; retry.")

    return _counters(
        db,
        schema.host_pk(host.id),
        delta,
        "workload_count",
        count,
        now,
        " AND ".join(conditions),
        values,
        {"#status": "status"} if ":ready" in values else None,
        refuse,
    )


def _counters(
    db: Dynamo,
    pk: str,
    delta: Resources,
    count_attr: str,
    count: int,
    now: str | None,
    condition: str,
    values: Item,
    names: dict[str, str] | None,
    refuse: Callable[[Item | None], CorralError],
) -> TxEntry:
    sets = [f"used_{name} = used_{name} + :d_{name}" for name, v in delta.items() if v != 0]
    values = dict(values)
    for name, v in delta.items():
        if v != 0:
            values[f":d_{name}"] = v
    if count:
        sets.append(f"{count_attr} = {count_attr} + :dcount")
        values[":dcount"] = count
    sets.append("version = version + :inc")
    values[":inc"] = 1
    sets.append("updated_at = :now")
    return db.tx_update(
        pk,
        schema.META,
        "SET " + ", ".join(sets),
        values,
        condition=condition,
        names=names,
        on_fail=refuse,
    )


def release(db: Dynamo, pk: str, workload: Workload, count_attr: str, now: str) -> TxEntry:
    delta = Resources() - workload.resources
    sets = [f"used_{name} = used_{name} + :d_{name}" for name, v in delta.items() if v != 0]
    values: Item = {f":d_{name}": v for name, v in delta.items() if v != 0}
    sets += [
        f"{count_attr} = {count_attr} - :one",
        "version = version + :one",
        "updated_at = :now",
    ]
    values |= {":one": 1, ":now": now}
    return db.tx_update(pk, schema.META, "SET " + ", ".join(sets), values)
