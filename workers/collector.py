"""The health collector (scheduled, see workers/cron.py): sample every workload on
every host, store each workload's health on its item and each host's summed load on
the host item. API reads then cost one table read and never a host call.

Hosts are sampled concurrently, and a driver samples one host's workloads
concurrently (see infra/drivers/docker_observe.py), so a pass takes about as long as
the slowest host. A host that does not answer, or that the health check marked
down, gets its workloads marked `unknown` with the reason, keeping their last
numbers; a collector that stops running leaves heartbeats to go stale, which the
API reports as `unknown` (`heartbeat_stale`) once they are older than
`settings.health_stale_seconds`.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from infra.drivers.base import HostDriver
from shared import health as h
from shared.errors import CorralError, HostError, NotFound
from shared.health import Health, Stats, UnknownReason
from shared.models import Host, HostStatus, Workload
from shared.states import WorkloadStatus
from workers import context

log = logging.getLogger("corral.collector")

# Hosts sampled at once.
MAX_CONCURRENT_HOSTS = 8


@dataclass
class HostReport:
    host_id: str
    measured: int = 0
    unknown: dict[str, str] = field(default_factory=dict)  # workload id -> reason


def measurable(workload: Workload) -> bool:
    return not workload.status.is_gone and workload.status is not WorkloadStatus.DELETING


def collect_host(
    ctx: context.WorkerContext, host: Host, driver: HostDriver | None, now: datetime
) -> HostReport:
    """Sample one host's workloads and record what was found."""
    report = HostReport(host.id)
    workloads = [w for w in ctx.repo.workloads.on_host(host.id) if measurable(w)]
    fresh_for = timedelta(seconds=ctx.settings.health_stale_seconds)
    reason: UnknownReason | None = None
    samples: dict[str, Stats] = {}
    if host.health is HostStatus.DOWN:
        reason = UnknownReason.HOST_DOWN
    elif driver is None:
        reason = UnknownReason.HOST_UNREACHABLE
    else:
        try:
            samples = driver.stats([w.id for w in workloads]) if workloads else {}
        except HostError as exc:
            log.warning("host %s (%s) gave no samples: %s", host.name, host.id, exc)
            reason = UnknownReason.HOST_UNREACHABLE
    if reason is not None:
        for workload in workloads:
            _mark_unknown(ctx, workload, reason)
            report.unknown[workload.id] = reason.value
        return report
    fresh: list[Health] = []
    for workload in workloads:
        sample = samples.get(workload.id)
        if sample is None:
            health = h.missing(now, fresh_for)
        else:
            health = h.measured(sample, workload.health, now, fresh_for)
        ctx.repo.health.record_workload(
            workload.cluster_id, workload.id, health, sample=sample is not None
        )
        fresh.append(health)
        report.measured += 1
    ctx.repo.health.record_host_load(host.id, h.host_load(fresh, now, fresh_for))
    return report


def _mark_unknown(ctx: context.WorkerContext, workload: Workload, reason: UnknownReason) -> None:
    previous = workload.health
    if previous is not None and previous.reason is reason:
        return  # marked already: spare the write
    ctx.repo.health.record_workload(workload.cluster_id, workload.id, h.unknown(previous, reason))


def collect_one_host(host_id: str) -> dict[str, object]:
    """RQ job (one host's share of the scheduled collection): sample the host's
    workloads. Returns a summary, as `collect_health` does for every host."""
    ctx = context.current()
    try:
        host = ctx.repo.hosts.get(host_id)
    except NotFound:
        return {"hosts": 0, "measured": 0, "unknown": {}}
    try:
        driver: HostDriver | None = ctx.drivers.for_host(host)
    except HostError as exc:
        log.warning("no driver for host %s (%s): %s", host.name, host.id, exc)
        driver = None
    report = collect_host(ctx, host, driver, ctx.clock())
    return {"hosts": 1, "measured": report.measured, "unknown": report.unknown}


def collect_health() -> dict[str, object]:
    """A whole pass in this one process (a small install, the tests): every host,
    sampled by a few threads. The scheduled collection spreads the hosts over jobs
    instead (workers.fleet.collect_fleet). Returns a summary."""
    ctx = context.current()
    now = ctx.clock()
    hosts = ctx.repo.hosts.list()
    # The driver cache is not thread-safe: build every driver here, sample in threads.
    drivers: dict[str, HostDriver | None] = {}
    for host in hosts:
        try:
            drivers[host.id] = ctx.drivers.for_host(host)
        except HostError as exc:
            log.warning("no driver for host %s (%s): %s", host.name, host.id, exc)
            drivers[host.id] = None
    reports: list[HostReport] = []
    if hosts:
        with ThreadPoolExecutor(min(MAX_CONCURRENT_HOSTS, len(hosts))) as pool:
            futures = {
                host.id: pool.submit(collect_host, ctx, host, drivers[host.id], now)
                for host in hosts
            }
            for host_id, future in futures.items():
                try:
                    reports.append(future.result())
                except CorralError as exc:  # the table, or a host deleted meanwhile
                    log.warning("collecting host %s failed: %s", host_id, exc)
    return {
        "hosts": len(reports),
        "measured": sum(r.measured for r in reports),
        "unknown": {wid: why for r in reports for wid, why in r.unknown.items()},
    }
