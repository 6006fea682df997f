"""A fleet loaded straight into the table: hosts, and running workloads spread over
them, with every counter the transactions would have moved (the hosts', the placement
summary's, the cluster's) set to match. Loading 100,000 workloads through the API
would take hours here; the benchmark and its CI test measure what the API reads once
the fleet is there."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from infra.table import schema
from infra.table.attributes import to_wire
from infra.table.expression import Expression
from infra.table.placement import HostMove, status_change
from infra.table.repository import Repository
from infra.table.workloads import workload_item
from shared.capacity import Resources
from shared.clock import new_id, utc_now
from shared.models import DriverKind, Engine, Host, HostStatus, Workload
from shared.states import WorkloadStatus

BATCH = 25  # batch_write_item's limit
LOADERS = 4  # concurrent batch writers
# Hosts whose counters one transaction moves: an update expression holds 4 KB.
COUNTED_TOGETHER = 10
# What each loaded workload holds.
WORKLOAD = Resources(cpu_centi=1, ram_mb=16, storage_mb=16)


def register(
    repo: Repository,
    count: int,
    capacity: Resources,
    *,
    address: str = "unix:///nonexistent.sock",
    first: int = 0,
    addresses: Sequence[str] = (),
) -> list[Host]:
    """Register `count` ready Docker hosts of `capacity`, named from `first` on, at
    `address` (or each at its own of `addresses`)."""
    now = utc_now()
    where = list(addresses) or [address] * count
    hosts = [host(f"fleet-{first + i:04d}", where[i], capacity, now) for i in range(count)]
    for record in hosts:
        repo.hosts.create(record)
    return hosts


def host(name: str, address: str, capacity: Resources, now: datetime) -> Host:
    return Host(
        id=new_id(),
        name=name,
        driver=DriverKind.DOCKER,
        address=address,
        engines=(Engine.DOCKER,),
        capacity=capacity,
        used=Resources(),
        workload_count=0,
        status=HostStatus.READY,
        labels={},
        created_at=now,
        updated_at=now,
    )


def load(
    repo: Repository,
    cluster_id: str,
    egg_id: str,
    hosts: list[Host],
    per_host: int,
    placed: Callable[[int, Workload], None] | None = None,
) -> int:
    """Put `per_host` running workloads of `cluster_id` (each holding `WORKLOAD`) on
    each of `hosts`, and move every counter as their creates would have; `placed` is
    told each one (with its host's index), to start it on a simulated engine. The
    hosts and the cluster's plan must have room for them. Returns how many were
    loaded."""
    now = utc_now()
    items = []
    for index, record in enumerate(hosts):
        for n in range(per_host):
            workload = Workload(
                id=new_id(),
                cluster_id=cluster_id,
                name=f"{record.name}-{n}",
                egg_id=egg_id,
                engine=Engine.DOCKER,
                host_id=record.id,
                resources=WORKLOAD,
                status=WorkloadStatus.RUNNING,
                created_at=now,
                updated_at=now,
            )
            items.append(to_wire(workload_item(workload)))
            if placed is not None:
                placed(index, workload)
    _write(repo, items)
    held = times(WORKLOAD, per_host)
    moves = {
        r.id: HostMove(held, per_host) + status_change(None, WorkloadStatus.RUNNING, per_host)
        for r in hosts
    }
    for record in hosts:
        repo.db.update(
            schema.host_pk(record.id), schema.META, _moved(held, per_host, "workload_count")
        )
    cluster_write = _moved(times(held, len(hosts)), len(items), "container_count")
    repo.db.update(schema.cluster_pk(cluster_id), schema.META, cluster_write)
    ids = list(moves)
    for start in range(0, len(ids), COUNTED_TOGETHER):
        chunk = {host_id: moves[host_id] for host_id in ids[start : start + COUNTED_TOGETHER]}
        counts = [*repo.placement.moves(chunk), *repo.clusters.count_moves(cluster_id, chunk)]
        repo.db.transact(counts)
    return len(items)


def times(resources: Resources, count: int) -> Resources:
    return Resources(**{name: value * count for name, value in resources.items()})


def _moved(held: Resources, count: int, count_attribute: str) -> Expression:
    write = Expression().add(count_attribute, count).add("version", 1)
    for name, value in held.items():
        if value:
            write.add(f"used_{name}", value)
    return write


def _write(repo: Repository, items: list[dict[str, Any]]) -> None:
    client, table = repo.db.client, repo.db.table

    def write(batch: list[dict[str, Any]]) -> None:
        pending: Any = {table: [{"PutRequest": {"Item": item}} for item in batch]}
        while pending:
            pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems")

    batches = [items[i : i + BATCH] for i in range(0, len(items), BATCH)]
    with ThreadPoolExecutor(LOADERS) as pool:
        list(pool.map(write, batches))
