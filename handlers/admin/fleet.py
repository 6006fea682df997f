"""Fleet-wide views: capacity and workloads per host, platform stats."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import falcon

from handlers import shapes, views
from handlers.body import LIMIT_QUERY
from handlers.declare import responds
from handlers.pages import CURSOR_QUERY, PAGE_QUERIES, by_time, page_of, paged
from services.deps import Deps
from shared.capacity import Resources
from shared.models import Host
from shared.states import WorkloadStatus


def _sum_by_status(counts: Iterable[dict[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for by_status in counts:
        total.update(by_status)
    return {status: count for status, count in total.items() if count > 0}


class FleetStatus:
    """GET /api/v1/status: per-host and total capacity, used, free, workloads by status.
    The totals and the workloads by status come from the placement summary (its
    `PLACEMENT_SHARDS` items, whose counters move in the same transactions as what they
    count), whatever the number of hosts or workloads. Without `limit` or `cursor` the
    per-host detail lists every host (one item per host); with them, a page of hosts in
    id order and a `Next-Cursor` header: the summary's items and the page's hosts are
    read, whatever the size of the fleet."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    @responds(200, shapes.FleetStatusView, query=PAGE_QUERIES)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        repo = self._deps.repo
        summary = repo.placement.fleet()
        if page_of(req, self._deps.settings) is None:
            hosts = repo.hosts.list()
        else:
            listed = paged(req, resp, self._deps.settings, summary.hosts)
            hosts = repo.hosts.get_many([h.id for h in listed])
        by_host = summary.by_status
        capacity = sum((h.capacity for h in summary.hosts), Resources())
        used = sum((h.used for h in summary.hosts), Resources())
        resp.media = {
            "hosts": [
                views.host(h) | {"workloads": _sum_by_status([by_host.get(h.id, {})])}
                for h in hosts
            ],
            "totals": {
                "hosts": len(summary.hosts),
                "capacity": views.resources(capacity),
                "used": views.resources(used),
                "free": views.resources(capacity - used),
                "workloads": _sum_by_status(by_host.get(h.id, {}) for h in summary.hosts),
            },
        }


class FleetStats:
    """GET /api/v1/stats: platform-wide totals. Containers are counted by the placement
    summary's counters (those of deleted hosts too): no workload is read."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    @responds(200, shapes.FleetStatsView)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        repo = self._deps.repo
        clusters = repo.clusters.list()
        hosts = repo.hosts.list()
        by_status = _sum_by_status(repo.placement.workloads_by_status().values())
        resp.media = {
            "clusters": len(clusters),
            "clusters_by_status": dict(Counter(c.status.value for c in clusters)),
            "nodes": len(hosts),
            "nodes_by_status": dict(Counter(h.status.value for h in hosts)),
            "eggs": len(repo.eggs.list()),
            "containers": sum(by_status.values()),
            "containers_by_status": by_status,
            "running_tasks": by_status.get(WorkloadStatus.RUNNING.value, 0),
            **_measured_load(hosts, self._deps.clock()),
        }


def _measured_load(hosts: list[Host], now: datetime) -> dict[str, Any]:
    """The collector's measured load summed over the hosts whose last sum is fresh,
    beside their capacity."""
    fresh = [h for h in hosts if h.load is not None and not h.load.is_stale(now)]
    capacity = sum((h.capacity for h in hosts), Resources())
    cpu_percent = round(sum(h.load.cpu_percent for h in fresh if h.load), 2)
    return {
        "capacity": {"cpu_cores": capacity.to_api()["cpu_cores"], "ram_mb": capacity.ram_mb},
        "load": {
            "cpu_percent": cpu_percent,
            "cpu_cores": round(cpu_percent / 100, 2),
            "memory_mb": sum(h.load.memory_mb for h in fresh if h.load),
            "disk_mb": sum(h.load.disk_mb for h in fresh if h.load),
            "workloads": sum(h.load.workloads for h in fresh if h.load),
            "hosts_measured": len(fresh),
        },
    }


class FleetOperations:
    """GET /api/v1/operations?limit=N: recent operations across clusters, newest first."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    @responds(200, list[shapes.OperatorOperationView], query=(LIMIT_QUERY, CURSOR_QUERY))
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        repo = self._deps.repo
        kept = [o for c in repo.clusters.list() for o in repo.operations.in_cluster(c.id)]
        recent = paged(
            req, resp, self._deps.settings, kept, by_time,
            newest_first=True, default_limit=20, high=100,
        )  # fmt: skip
        resp.media = [views.operator_operation(o) for o in recent]
