"""Starting an operation: the one place a queued `Operation` is built and enqueued.

Every change to a workload (a tenant's create, resize, power or delete, an env's, the
expiry sweep's reap, the reconciler's repair) is an operation: written to the table as
intent first, under the workload's conditions, then enqueued. The table is the truth:
when the queue is down the operation stays queued and the reconciler enqueues it again.
"""

from __future__ import annotations

import logging
from datetime import datetime

from infra.queue import JobQueue
from shared.errors import ServiceUnavailable
from shared.models import Operation, OperationParams, Workload
from shared.states import OperationKind, OperationStatus

log = logging.getLogger("corral.operations")


def queued(
    operation_id: str,
    cluster_id: str,
    workload_id: str,
    kind: OperationKind,
    params: OperationParams,
    now: datetime,
) -> Operation:
    """A new operation on a workload, queued at `now`."""
    return Operation(
        id=operation_id,
        cluster_id=cluster_id,
        workload_id=workload_id,
        kind=kind,
        params=params,
        status=OperationStatus.QUEUED,
        created_at=now,
        updated_at=now,
    )


def enqueue(jobs: JobQueue, operation: Operation, workload: Workload | None = None) -> None:
    """Hand a written operation to the workers (with its `workload` as written, when the
    caller has it: the job then reads the workload's host and egg with it); a queue
    that is down leaves it to the reconciler, which re-enqueues queued operations."""
    try:
        jobs.enqueue_operation(operation, workload)
    except ServiceUnavailable:
        log.warning("queue unavailable; operation %s stays queued for the reconciler", operation.id)
