"""The rq worker class Corral runs (`rq worker -w workers.worker.CorralWorker`).

Jobs run in the worker's own long-lived process, one after another (rq's
`SimpleWorker`): the job modules, boto3's service model, the worker context (table
client, Redis connection, the cached docker clients of `DriverFactory`) and their
open connections are made once, by the first job, and reused by every later one.
rq's forking worker paid for a fork, a fresh context and new connections on every
job, more than a power operation's own work (docs/DEPLOY.md has the figures).

What the fork gave stays:
- a job past its timeout is stopped: the SIGALRM death penalty raises
  `JobTimedOut` inside the job, in this process as rq's did in the horse, and
  `workers.jobs.run_operation` records the operation failed (rq records the job
  failed);
- a job stuck where that cannot reach it (a hang in C code that never returns to
  Python) is caught by a watchdog thread: past its timeout plus `HARD_GRACE_S`
  the process exits, as a horse killed by its parent did; the supervisor (`make
  run`, systemd) starts it again, and the operation left running is converged by
  the reconciler's requeue like any crashed worker's;
- a worker that dies (SIGKILL, OOM) takes only its one job with it, as before.

Concurrency comes from running more of these processes (docs/DEPLOY.md).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from rq.job import Job
from rq.queue import Queue
from rq.timeouts import UnixSignalDeathPenalty
from rq.utils import import_attribute
from rq.worker import SimpleWorker

from infra import logs, metrics
from infra.jobs import JOBS, RUN_OPERATION
from infra.queue import REQUEST_ID_META
from infra.table.dynamo import table_session
from shared import trace
from workers.jobs import JobTimedOut

# Past a job's timeout by this much, its death penalty did not work: exit.
HARD_GRACE_S = 30.0
EXIT_STUCK = 70

log = logging.getLogger("corral.worker")

# Every registered job, imported before the first job runs.
PRELOADED = tuple(import_attribute(job.function) for job in JOBS)

# Building one client loads and caches the DynamoDB service model in the session of
# the table's clients (infra.table.dynamo). It makes no network call.
table_session().client("dynamodb", region_name="us-east-1")


class StopPastTimeout(UnixSignalDeathPenalty):
    """rq's SIGALRM death penalty, raising `JobTimedOut` (a BaseException) instead of
    rq's JobTimeoutException, which library code catching Exception would swallow."""

    def handle_death_penalty(self, signum: int, frame: object) -> None:
        raise JobTimedOut(f"the job ran past its timeout ({self._timeout} s)")


class CorralWorker(SimpleWorker):
    """rq's in-process worker, with Corral's job code imported, its timeout raised
    as `JobTimedOut`, and a watchdog on every job."""

    death_penalty_class = StopPastTimeout

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        logs.configure(unless_set=True)

    def execute_job(self, job: Job, queue: Queue) -> None:
        """Run `job` under the ids of the request that asked for it (its log lines carry
        them), and count it for GET /metrics."""
        meta = job.meta or {}
        tokens = (
            trace.request_id.set(meta.get(REQUEST_ID_META)),
            trace.job_id.set(job.id),
            trace.operation_id.set(job.id if job.func_name == RUN_OPERATION.function else None),
        )
        started = time.perf_counter()
        try:
            self._execute_watched(job, queue)
        finally:
            _count(job, time.perf_counter() - started)
            trace.operation_id.reset(tokens[2])
            trace.job_id.reset(tokens[1])
            trace.request_id.reset(tokens[0])

    def _execute_watched(self, job: Job, queue: Queue) -> None:
        limit = job.timeout if job.timeout is not None and job.timeout > 0 else None
        if limit is None:
            super().execute_job(job, queue)
            return
        watchdog = threading.Timer(limit + HARD_GRACE_S, _stuck, args=(job.id, limit))
        watchdog.daemon = True
        watchdog.start()
        try:
            super().execute_job(job, queue)
        finally:
            watchdog.cancel()


def _count(job: Job, seconds: float) -> None:
    """The job's outcome and, for a periodic job, what it reported."""
    try:
        status = job.get_status(refresh=True)
        outcome = status.value if status is not None else "unknown"
        result = job.return_value() if outcome == "finished" else None
    except Exception:  # Redis gone: the job's own outcome is recorded elsewhere
        log.warning("job %s: its outcome could not be read for the metrics", job.id)
        return
    name = str(job.func_name).rsplit(".", 1)[-1]
    metrics.observe_job(
        name, outcome, seconds, None if job.func_name == RUN_OPERATION.function else result
    )


def _stuck(job_id: str, limit: float) -> None:
    log.error(
        "job %s ran %.0f s past its %.0f s timeout and could not be stopped: exiting",
        job_id, HARD_GRACE_S, limit,
    )  # fmt: skip
    logging.shutdown()
    os._exit(EXIT_STUCK)
