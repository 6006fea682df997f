"""The expiry sweep: find what is due through the expiry index and enqueue one reap
per workload. Its cost follows the number of due workloads, not the fleet.

Overlapping sweeps never reap twice: starting the reap is a conditional write that
needs the workload to have no operation in flight, and the job id is the operation id.
One workload whose reap cannot start is logged and skipped, never the rest."""

from __future__ import annotations

import logging
from datetime import datetime

from services import operations
from shared.errors import ActionNotAllowed, Conflict, NotFound
from shared.models import OperationParams, OperationReason, Workload
from shared.states import OperationKind, WorkloadStatus
from workers import context

log = logging.getLogger("corral.sweeps")

BATCH = 500


def reap_operation_id(workload: Workload) -> str:
    """Deterministic for one version of the workload, so sweeps racing over it name the
    same job; every change to the workload (a failed reap's outcome too) bumps its
    version, so the next reap gets a new id."""
    return f"op-reap-{workload.id}-v{workload.version}"


def start_reap(
    ctx: context.WorkerContext, cluster_id: str, workload_id: str, now: datetime
) -> bool:
    """Begin reaping one due workload. False when it is not due any more, already gone,
    or busy (a later sweep tries again)."""
    try:
        workload = ctx.repo.workloads.get(cluster_id, workload_id)
    except NotFound:
        return False
    if workload.status.is_gone or workload.expires_at is None or workload.expires_at > now:
        return False
    if workload.pending_op:
        return False
    operation = operations.queued(
        reap_operation_id(workload),
        cluster_id,
        workload.id,
        OperationKind.DELETE,
        OperationParams(reason=OperationReason.EXPIRED, previous=workload.status),
        now,
    )
    try:
        ctx.repo.begin_operation(
            workload, operation, set_fields={"status": WorkloadStatus.DELETING.value}
        )
    except (ActionNotAllowed, Conflict):
        return False  # another sweep, or the tenant, got there first
    operations.enqueue(ctx.jobs, operation)
    return True


def sweep_expired(limit: int = BATCH) -> int:
    """RQ job (scheduled): reap every workload whose lease has run out. Returns how many
    reaps it started."""
    ctx = context.current()
    now = ctx.clock()
    started = 0
    for cluster_id, workload_id in ctx.repo.workloads.due(now, limit):
        try:
            started += start_reap(ctx, cluster_id, workload_id, now)
        except Exception:
            log.exception("sweep: reap of %s not started; the next sweep tries again", workload_id)
    if started:
        log.info("sweep started %d reaps", started)
    return started
