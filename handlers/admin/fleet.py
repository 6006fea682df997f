"""Fleet-wide views: capacity and workloads per host, platform stats."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

import falcon

from handlers import shapes, views
from handlers.body import LIMIT_QUERY
from handlers.declare import responds
from handlers.pages import CURSOR_QUERY, by_time, paged
from services.deps import Deps
from shared.capacity import Resources
from shared.models import Host, Workload


def _by_status(workloads: list[Workload]) -> dict[str, int]:
    return dict(Counter(w.status.value for w in workloads))


class FleetStatus:
    """GET /api/v1/status: per-host and total capacity, used, free, workloads by status."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    @responds(200, shapes.FleetStatusView)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        repo = self._deps.repo
        hosts = repo.hosts.list()
        per_host = []
        capacity, used = Resources(), Resources()
        everything: list[Workload] = []
        for host in hosts:
            workloads = [w for w in repo.workloads.on_host(host.id) if not w.status.is_gone]
            everything += workloads
            capacity, used = capacity + host.capacity, used + host.used
            per_host.append(views.host(host) | {"workloads": _by_status(workloads)})
        resp.media = {
            "hosts": per_host,
            "totals": {
                "hosts": len(hosts),
                "capacity": views.resources(capacity),
                "used": views.resources(used),
                "free": views.resources(capacity - used),
                "workloads": _by_status(everything),
            },
        }


class FleetStats:
    """GET /api/v1/stats: platform-wide totals."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    @responds(200, shapes.FleetStatsView)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        repo = self._deps.repo
        clusters = repo.clusters.list()
        hosts = repo.hosts.list()
        workloads = [
            w for c in clusters for w in repo.workloads.in_cluster(c.id) if not w.status.is_gone
        ]
        resp.media = {
            "clusters": len(clusters),
            "clusters_by_status": dict(Counter(c.status.value for c in clusters)),
            "nodes": len(hosts),
            "nodes_by_status": dict(Counter(h.status.value for h in hosts)),
            "eggs": len(repo.eggs.list()),
            "containers": len(workloads),
            "containers_by_status": _by_status(workloads),
            "running_tasks": sum(1 for w in workloads if w.status.value == "running"),
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
