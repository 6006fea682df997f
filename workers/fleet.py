"""The scheduled passes over the hosts, spread: each scheduled job lists the hosts
(one query of the host index; no host is called) and enqueues one job per host
(`infra.jobs.HOST_JOBS`), which the workers share. A pass over 1,000 hosts is then
1,000 small jobs; a slow or dead host delays only its own job, and a host whose job
of the previous pass is still waiting or running skips this one."""

from __future__ import annotations

from collections.abc import Iterable

from infra.jobs import CHECK_HOST, COLLECT_HOST, RECONCILE_HOST, RECOUNT_HOST, Job
from shared.models import HostStatus
from workers import context
from workers.databases import check_database_hosts
from workers.reconcile import Report, requeue_lost_operations

# How long one host's share of a pass may run.
HOST_JOB_TIMEOUT_SECONDS = 120


def reconcile_fleet() -> dict[str, object]:
    """RQ job (scheduled): re-enqueue the lost operations (what is due, not the fleet),
    then one reconcile job per host that is not down, and one recount job per host whose
    workloads-by-status counters were never set from its workloads."""
    ctx = context.current()
    report = Report()
    requeue_lost_operations(ctx, report)
    hosts = ctx.repo.hosts.list()
    up = (h.id for h in hosts if h.status != HostStatus.DOWN)
    spread = _spread(ctx, RECONCILE_HOST, up)
    recounts = _spread(ctx, RECOUNT_HOST, ctx.repo.placement.not_recounted(h.id for h in hosts))
    return {"requeued": report.requeued, **spread, "recounts": recounts["enqueued"]}


def recount_one_host(host_id: str) -> dict[str, object]:
    """RQ job: set one host's workloads-by-status counters from its workloads
    (`Repository.recount_statuses`). When they moved meanwhile, the next reconcile pass
    enqueues it again."""
    return {"recounted": context.current().repo.recount_statuses(host_id)}


def check_fleet() -> dict[str, object]:
    """RQ job (scheduled): one check job per host; the database hosts (a few) here."""
    ctx = context.current()
    spread = _spread(ctx, CHECK_HOST, (h.id for h in ctx.repo.hosts.list()))
    return {**spread, "database_hosts": check_database_hosts(ctx)}


def collect_fleet() -> dict[str, object]:
    """RQ job (scheduled): one collection job per host."""
    ctx = context.current()
    return _spread(ctx, COLLECT_HOST, (h.id for h in ctx.repo.hosts.list()))


def _spread(ctx: context.WorkerContext, job: Job, host_ids: Iterable[str]) -> dict[str, object]:
    enqueued = skipped = 0
    for host_id in host_ids:
        if ctx.jobs.enqueue_host_job(job, host_id, timeout_seconds=HOST_JOB_TIMEOUT_SECONDS):
            enqueued += 1
        else:
            skipped += 1  # its previous job is still waiting or running
    return {"enqueued": enqueued, "skipped": skipped}
