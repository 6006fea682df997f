"""The reconciler: keeps the table and the hosts in agreement.

- An operation the table says is unfinished but Redis no longer holds (or whose
  worker died) is enqueued again: losing Redis loses no work. So is the job of an
  operator's database left `creating` or `deleting` (a tenant's database, and a
  backup, change by an operation of their container: the line above).
- A workload the table says exists but its host lost is recreated (restart policy
  `always`) or marked error (`never`).
- A workload whose engine state drifted (it stopped on its own) is recorded as it is.
- A labelled workload on a host that the table does not know is adopted back when
  its cluster and egg exist and the cluster has room; otherwise it is reported and,
  after a grace period, removed.
Every repair and adoption is recorded as an operation readable through the API."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import ParamSpec

from infra.drivers.base import HostDriver
from services import operations
from services.databases import ChangeJob
from shared import rules
from shared.capacity import Resources
from shared.databases import DatabaseStatus
from shared.environment import variable_values
from shared.errors import CorralError, Failure, HostError, NotFound
from shared.models import (
    Host,
    HostStatus,
    Operation,
    OperationParams,
    OperationReason,
    RestartPolicy,
    Workload,
)
from shared.runtime import (
    LABEL_CLUSTER,
    LABEL_CONFIG,
    LABEL_EGG,
    LABEL_NAME,
    LABEL_PORTS,
    LABEL_RESOURCES,
    LABEL_RESTART,
    Observed,
    RuntimeState,
    allocations_published,
)
from shared.states import OperationKind, OperationStatus, WorkloadStatus
from workers import context
from workers.databases import connections
from workers.jobs import LOST_MESSAGE, spec_for

log = logging.getLogger("corral.reconcile")
Params = ParamSpec("Params")

# An unfinished operation younger than this is left to the queue that has it.
QUEUED_GRACE = timedelta(seconds=30)
# A running operation not updated for this long (past the job timeout) lost its worker.
RUNNING_GRACE = timedelta(seconds=60)
# An unknown labelled workload is removed after this long.
ORPHAN_GRACE = timedelta(minutes=10)
BATCH = 500

_DATABASE_IN_FLIGHT = {DatabaseStatus.CREATING, DatabaseStatus.DELETING}
_SETTLED = {WorkloadStatus.RUNNING, WorkloadStatus.STOPPED, WorkloadStatus.PAUSED}
_ENGINE_STATUS = {
    RuntimeState.RUNNING: WorkloadStatus.RUNNING,
    RuntimeState.PAUSED: WorkloadStatus.PAUSED,
    RuntimeState.STOPPED: WorkloadStatus.STOPPED,
}


@dataclass
class Report:
    requeued: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    drifted: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in self.__dict__.items()}


def reconcile() -> dict[str, list[str]]:
    """A whole pass in this one process (a small install, the tests): the lost
    operations, then every host that is not down, one after the other. The scheduled
    pass spreads the hosts over jobs instead (workers.fleet.reconcile_fleet). Returns
    what it did, by kind. One host, one workload or one operation that fails (a
    tenant's request racing this pass, a host error) is logged and skipped, never the
    rest of the pass."""
    ctx = context.current()
    report = Report()
    requeue_lost_operations(ctx, report)
    requeue_lost_database_jobs(ctx, report)
    for host in ctx.repo.hosts.list():
        if host.status != HostStatus.DOWN:
            _reconcile_isolated(ctx, host, report)
    return report.as_dict()


def reconcile_one_host(host_id: str) -> dict[str, list[str]]:
    """RQ job (one host's share of the scheduled pass): reconcile the host, unless it is
    down or gone. Returns what it did, by kind."""
    ctx = context.current()
    report = Report()
    try:
        host = ctx.repo.hosts.get(host_id)
    except NotFound:
        return report.as_dict()  # deleted since the pass listed it
    if host.status != HostStatus.DOWN:
        _reconcile_isolated(ctx, host, report)
    return report.as_dict()


def _reconcile_isolated(ctx: context.WorkerContext, host: Host, report: Report) -> None:
    try:
        reconcile_host(ctx, host, report)
    except Exception:
        log.exception("reconcile: host %s skipped this pass", host.name)


# -- operations -------------------------------------------------------------------


def requeue_lost_operations(ctx: context.WorkerContext, report: Report) -> None:
    now = ctx.clock()
    stale_running = timedelta(seconds=ctx.settings.job_timeout_seconds) + RUNNING_GRACE
    for cluster_id, operation_id in ctx.repo.operations.pending(now - QUEUED_GRACE, BATCH):
        try:
            op = ctx.repo.operations.get(cluster_id, operation_id)
            if op.status.is_finished:
                continue
            worker_dead = (
                op.status == OperationStatus.RUNNING and now - op.updated_at > stale_running
            )
            if ctx.jobs.requeue_operation(op, replace_started=worker_dead):
                report.requeued.append(op.id)
        except NotFound:
            continue
        except Exception:
            log.exception("reconcile: operation %s not re-queued this pass", operation_id)


def requeue_lost_database_jobs(ctx: context.WorkerContext, report: Report) -> None:
    """An operator's database still `creating` or `deleting` past the grace: its job is
    enqueued again unless it waits in the queue (or runs, while its worker may still be
    alive). The job converges from the record, so a second run changes nothing."""
    now = ctx.clock()
    stale_running = timedelta(seconds=ctx.settings.job_timeout_seconds) + RUNNING_GRACE
    for database in ctx.repo.databases.every():
        if database.owner_id is not None or database.status not in _DATABASE_IN_FLIGHT:
            continue
        if now - database.updated_at < QUEUED_GRACE:
            continue
        change = ChangeJob.of(database)
        worker_dead = now - database.updated_at > stale_running
        try:
            if ctx.jobs.requeue_job(
                change.job, change.args, job_id=change.job_id, replace_started=worker_dead
            ):
                report.requeued.append(change.job_id)
        except Exception:
            log.exception("reconcile: database %s not re-queued this pass", database.id)


# -- hosts ------------------------------------------------------------------------


def reconcile_host(ctx: context.WorkerContext, host: Host, report: Report) -> None:
    """Compare the host with the table. The table is read first: anything that changes
    between the two reads is then newer on the host than in what was read (a provision
    finishing shows as a workload still in flight, which is skipped), never older; and
    every repair reads both again before it is recorded."""
    known = {w.id: w for w in ctx.repo.workloads.on_host(host.id)}
    driver = ctx.drivers.for_host(host)
    try:
        observed = {o.workload_id: o for o in driver.list_managed()}
    except HostError as exc:
        log.warning("reconcile: host %s unreachable: %s", host.name, exc)
        return
    for workload in known.values():
        if workload.status in _SETTLED and not workload.pending_op:
            _isolated(_check_workload, ctx, driver, workload, observed.get(workload.id), report)
    for workload_id, seen in observed.items():
        record = known.get(workload_id)
        if record is None:
            _isolated(_unknown, ctx, host, driver, seen, report)
        elif record.status.is_gone:  # a leftover of a finished delete
            _isolated(_remove_leftover, ctx, driver, workload_id, report)


def _isolated(step: Callable[Params, None], *args: Params.args, **kwargs: Params.kwargs) -> None:
    """Run one workload's step; its failure is logged, and the pass goes on."""
    try:
        step(*args, **kwargs)
    except Exception:
        log.exception("reconcile: %s failed; the next pass looks again", step.__name__)


def _remove_leftover(
    ctx: context.WorkerContext, driver: HostDriver, workload_id: str, report: Report
) -> None:
    driver.remove(workload_id)
    report.removed.append(workload_id)


def _check_workload(
    ctx: context.WorkerContext,
    driver: HostDriver,
    workload: Workload,
    seen: Observed | None,
    report: Report,
) -> None:
    seen_state = RuntimeState.MISSING if seen is None else seen.state
    if _ENGINE_STATUS.get(seen_state) == workload.status:
        return
    # Something looks off: read the table, then the host, again before repairing, so
    # an operation that finished (or began) since the first reads is not undone.
    current = ctx.repo.workloads.get(workload.cluster_id, workload.id)
    if current.version != workload.version:
        return  # it changed meanwhile: the next pass looks at the new state
    state = driver.inspect(workload.id).state
    if state == RuntimeState.MISSING:
        _lost(ctx, current, report)
        return
    actual = _ENGINE_STATUS[state]
    if actual != current.status:
        params = OperationParams(reason=OperationReason.DRIFT, was=current.status)
        if _record_repair(ctx, current, actual, None, params):
            report.drifted.append(current.id)


def _lost(ctx: context.WorkerContext, workload: Workload, report: Report) -> None:
    if workload.restart_policy == RestartPolicy.ALWAYS:
        op = _operation(
            ctx, workload, OperationKind.PROVISION, OperationParams(reason=OperationReason.LOST)
        )
        try:
            ctx.repo.begin_operation(
                workload, op, set_fields={"status": WorkloadStatus.PROVISIONING.value}
            )
        except CorralError:
            return  # a tenant's request got there first: look again next pass
        operations.enqueue(ctx.jobs, op)
        report.lost.append(workload.id)
        return
    params = OperationParams(reason=OperationReason.LOST)
    lost = Failure("lost", LOST_MESSAGE)
    if _record_repair(ctx, workload, WorkloadStatus.ERROR, lost, params):
        report.lost.append(workload.id)


def _record_repair(
    ctx: context.WorkerContext,
    workload: Workload,
    status: WorkloadStatus,
    error: Failure | None,
    params: OperationParams,
) -> bool:
    """Record a repair; False when the workload changed meanwhile (a tenant's request
    won): the next pass looks again."""
    op = _operation(ctx, workload, OperationKind.REPAIR, params)
    try:
        ctx.repo.begin_operation(workload, op)
    except CorralError:
        return False
    current = ctx.repo.workloads.get(workload.cluster_id, workload.id)
    ctx.repo.finish_operation(op, current, status=status, error=error, now=ctx.clock())
    return True


# -- unknown workloads ----------------------------------------------------------


def _unknown(
    ctx: context.WorkerContext, host: Host, driver: HostDriver, seen: Observed, report: Report
) -> None:
    if _created_since(ctx, host, seen):
        return
    try:
        adopted = _adopt(ctx, host, seen)
    except CorralError as exc:
        log.info("reconcile: cannot adopt %s on %s: %s", seen.workload_id, host.name, exc)
        adopted = None
    if adopted is not None:
        report.adopted.append(adopted.id)
        return
    report.orphans.append(seen.workload_id)
    if _orphaned_long_enough(ctx, host, seen.workload_id):
        driver.remove(seen.workload_id)
        report.removed.append(seen.workload_id)
        log.warning("reconcile: removed orphan %s from %s", seen.workload_id, host.name)


def _created_since(ctx: context.WorkerContext, host: Host, seen: Observed) -> bool:
    """Whether the table holds `seen` on this host now: created after the table was
    read, it is neither an orphan nor to be adopted."""
    cluster_id = seen.labels.get(LABEL_CLUSTER)
    if not cluster_id:
        return False
    try:
        record = ctx.repo.workloads.get(cluster_id, seen.workload_id)
    except NotFound:
        return False
    return record.host_id == host.id and not record.status.is_gone


def _adopt(ctx: context.WorkerContext, host: Host, seen: Observed) -> Workload | None:
    labels = seen.labels
    if not {LABEL_CLUSTER, LABEL_EGG, LABEL_RESOURCES} <= labels.keys():
        return None
    cluster = ctx.repo.clusters.get(labels[LABEL_CLUSTER])
    rules.require_active(cluster)
    try:
        ctx.repo.workloads.get(cluster.id, seen.workload_id)
        return None  # known to the table, on another host: not ours to adopt here
    except NotFound:
        pass
    egg = ctx.repo.eggs.get(labels[LABEL_EGG])
    resources = Resources(**json.loads(labels[LABEL_RESOURCES]))
    databases = ctx.repo.databases.in_cluster(cluster.id)
    now = ctx.clock()
    workload = Workload(
        id=seen.workload_id,
        cluster_id=cluster.id,
        name=labels.get(LABEL_NAME) or seen.workload_id,
        egg_id=egg.id,
        engine=egg.engine,
        host_id=host.id,
        resources=resources,
        status=_ENGINE_STATUS.get(seen.state, WorkloadStatus.STOPPED),
        created_at=now,
        updated_at=now,
        restart_policy=RestartPolicy(labels.get(LABEL_RESTART, RestartPolicy.NEVER.value)),
        enforced=dict(seen.enforced),
        # its published ports are held again (refused if another took one meanwhile)
        allocations=allocations_published(labels.get(LABEL_PORTS, ""), host.reached_at),
        # what it was made with: its variables' values, read back from its environment,
        # and the databases the table still binds to it (in the order they were bound)
        environment=variable_values(egg, seen.environment),
        databases=tuple(
            d.id
            for d in sorted(databases, key=lambda d: d.updated_at)
            if d.app_id == seen.workload_id and d.status != DatabaseStatus.DELETING
        ),
        database_count=sum(1 for d in databases if d.owner_id == seen.workload_id),
        backup_count=sum(
            1 for b in ctx.repo.backups.of_workload(cluster.id, seen.workload_id) if b.holds_slot
        ),
    )
    made = spec_for(workload, egg, databases=connections(ctx, workload))  # its environment
    if made.config_digest != labels.get(LABEL_CONFIG):
        log.warning(
            "reconcile: adopting %s, whose environment is not what its record composes "
            "(its egg or databases changed since?): its next recreate takes the record's",
            seen.workload_id,
        )
    op = _operation(ctx, workload, OperationKind.ADOPT, OperationParams(host_id=host.id))
    done = replace(op, status=OperationStatus.SUCCEEDED, started_at=now, finished_at=now)
    workload = replace(workload, last_op=done.id)
    ctx.repo.create_workload(workload, done, cluster, host)
    return workload


def _orphaned_long_enough(ctx: context.WorkerContext, host: Host, workload_id: str) -> bool:
    """Remember when an orphan was first seen (in Redis: losing it only restarts the wait)."""
    key = f"corral:orphan:{host.id}:{workload_id}"
    now = ctx.clock()
    redis = ctx.jobs.redis
    redis.set(key, now.timestamp(), nx=True, ex=int(ORPHAN_GRACE.total_seconds()) * 6)
    first_seen = datetime.fromtimestamp(float(redis.get(key) or now.timestamp()), tz=now.tzinfo)
    return now - first_seen >= ORPHAN_GRACE


def _operation(
    ctx: context.WorkerContext, workload: Workload, kind: OperationKind, params: OperationParams
) -> Operation:
    now = ctx.clock()
    operation_id = f"op-{kind.value}-{workload.id}-{int(now.timestamp() * 1000)}"
    return operations.queued(operation_id, workload.cluster_id, workload.id, kind, params, now)
