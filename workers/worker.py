"""The rq worker class Corral runs (`rq worker -w workers.worker.CorralWorker`).

Jobs run in the worker's own long-lived process (rq's `SimpleWorker`, no fork): the
job modules, boto3's service model, the worker context (table client, Redis
connection, the cached docker clients of `DriverFactory`) and their open connections
are made once and reused by every later job. rq's forking worker paid for a fork, a
fresh context and new connections on every job, more than a power operation's own
work (docs/DEPLOY.md has the figures).

A job's time is the host's (docker, SSH), so one process runs up to
`CORRAL_WORKER_CONCURRENCY` jobs at once, each in a thread of its own: the main
thread takes a job from the queue only when a thread is free. Two jobs for one
workload never run at once: a job holds its workload's lock (workers.locks) while it
touches it.

What the fork gave stays:
- a job past its timeout is stopped: every host call is bounded by the job's deadline
  (shared.deadline) and one past it raises `JobTimedOut` inside the job, which
  `workers.jobs.run_operation` records as a failed operation (a signal cannot do it:
  Python runs signal handlers in the main thread only);
- a job stuck where that cannot reach it (a call with no timeout, C code that never
  returns to Python) is caught by the watchdog thread: past its timeout plus
  `HARD_GRACE_S` the process exits, as a horse killed by its parent did; the
  supervisor (`make run`, systemd) starts it again, and the operations it left
  running are converged by the reconciler's requeue like any crashed worker's;
- a worker that dies (SIGKILL, OOM) takes only its own jobs with it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from rq.exceptions import StopRequested
from rq.executions import Execution
from rq.job import Job
from rq.queue import Queue
from rq.timeouts import BaseDeathPenalty
from rq.utils import import_attribute, now
from rq.worker import SimpleWorker, WorkerStatus

from infra import logs, metrics
from infra.jobs import JOBS, RUN_OPERATION
from infra.queue import REQUEST_ID_META
from infra.table.dynamo import table_session
from shared import deadline, trace
from shared.settings import Settings

# Past a job's timeout by this much, its deadline did not stop it: exit.
HARD_GRACE_S = 30.0
EXIT_STUCK = 70
EXIT_COLD = 1
WATCH_EVERY_S = 1.0
HEARTBEAT_EVERY_S = 60.0  # rq forgets a worker silent for its worker_ttl (420 s)

log = logging.getLogger("corral.worker")

# Every registered job, imported before the first job runs.
PRELOADED = tuple(import_attribute(job.function) for job in JOBS)

# Building one client loads and caches the DynamoDB service model in the session of
# the table's clients (infra.table.dynamo). It makes no network call.
table_session().client("dynamodb", region_name="us-east-1")


class Watchdog:
    """The jobs running in this process, by thread, with the moment each must have
    ended by; a thread looks every second and exits the process when one is past it
    by `HARD_GRACE_S`."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._running: dict[int, tuple[str, float, float]] = {}  # thread -> (job, limit, end)
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def watching(self, job_id: str, limit: float) -> Iterator[None]:
        me = threading.get_ident()
        with self._guard:
            self._running[me] = (job_id, limit, time.monotonic() + limit)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._watch, name="corral-watchdog", daemon=True
                )
                self._thread.start()
        try:
            yield
        finally:
            with self._guard:
                self._running.pop(me, None)

    def _watch(self) -> None:
        while True:
            time.sleep(WATCH_EVERY_S)
            now = time.monotonic()
            with self._guard:
                stuck = [(job, limit) for job, limit, end in self._running.values()
                         if now > end + HARD_GRACE_S]  # fmt: skip
            if stuck:
                _stuck(*stuck[0])


WATCHDOG = Watchdog()


class JobDeadline(BaseDeathPenalty):
    """rq's death penalty for a job run in a thread: the job's deadline, which its host
    calls keep (shared.deadline), watched by the watchdog."""

    def __init__(self, timeout: float, exception: type[BaseException] = Exception,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(timeout, exception, **kwargs)  # type: ignore[no-untyped-call]
        self._job_id = str(kwargs.get("job_id", "?"))
        self._stack = contextlib.ExitStack()

    def setup_death_penalty(self) -> None:
        limit = float(self._timeout) if self._timeout and self._timeout > 0 else None
        self._stack.enter_context(deadline.running(limit))
        if limit is not None:
            self._stack.enter_context(WATCHDOG.watching(self._job_id, limit))

    def cancel_death_penalty(self) -> None:
        self._stack.close()


class CorralWorker(SimpleWorker):
    """rq's in-process worker running up to `CORRAL_WORKER_CONCURRENCY` jobs at once,
    with Corral's job code imported and each job bounded by its deadline."""

    death_penalty_class = JobDeadline

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        logs.configure(unless_set=True)
        self.concurrency = Settings.from_env().worker_concurrency
        self._free = threading.BoundedSemaphore(self.concurrency)
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="corral-job")

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        """A job once a thread is free to run it (None: the queues stayed empty)."""
        self.set_state(WorkerStatus.IDLE)  # a stop request now ends the wait at once
        alive_at = time.monotonic()
        while not self._free.acquire(timeout=WATCH_EVERY_S):
            if time.monotonic() - alive_at > HEARTBEAT_EVERY_S:  # every thread busy, long
                self.heartbeat()
                alive_at = time.monotonic()
        if self._stop_requested:
            self._free.release()
            raise StopRequested()
        try:
            result = super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        except BaseException:
            self._free.release()
            raise
        if result is None:
            self._free.release()
        return result

    def execute_job(self, job: Job, queue: Queue) -> None:
        execution = self.prepare_execution(job)
        self._pool.submit(self._perform, job, queue, execution)

    def _perform(self, job: Job, queue: Queue, execution: Execution) -> None:
        """Run `job` in this thread under the ids of the request that asked for it (its
        log lines carry them), and count it for GET /metrics."""
        meta = job.meta or {}
        tokens = (
            trace.request_id.set(meta.get(REQUEST_ID_META)),
            trace.job_id.set(job.id),
            trace.operation_id.set(job.id if job.func_name == RUN_OPERATION.function else None),
        )
        started = time.perf_counter()
        try:
            self.perform_job(job, queue, execution)
        except BaseException:  # rq records the job's own failures; this is rq's
            log.exception("job %s: the worker failed around it", job.id)
        finally:
            _count(job, time.perf_counter() - started)
            trace.operation_id.reset(tokens[2])
            trace.job_id.reset(tokens[1])
            trace.request_id.reset(tokens[0])
            self._free.release()

    def teardown(self) -> None:
        """A warm stop (SIGTERM, a burst run's end): the running jobs finish first."""
        self._pool.shutdown(wait=True)
        super().teardown()  # type: ignore[no-untyped-call]

    def request_force_stop(self, signum: int, frame: Any) -> None:
        """A second SIGTERM (cold stop): exit now; the jobs left running are converged
        as a dead worker's are."""
        asked = self._shutdown_requested_date
        if asked is not None and now() - asked < timedelta(seconds=1):
            return  # the same stop request sent twice (rq's worker does the same)
        log.warning("cold stop: %d job(s) abandoned", len(self.executions))
        logging.shutdown()
        os._exit(EXIT_COLD)


def _count(job: Job, seconds: float) -> None:
    """The job's outcome and, for a periodic job, what it reported."""
    reports = job.func_name != RUN_OPERATION.function  # an operation's is in the table
    try:
        status = job.get_status(refresh=True)
        outcome = status.value if status is not None else "unknown"
        result = job.return_value() if reports and outcome == "finished" else None
    except Exception:  # Redis gone: the job's own outcome is recorded elsewhere
        log.warning("job %s: its outcome could not be read for the metrics", job.id)
        return
    name = str(job.func_name).rsplit(".", 1)[-1]
    metrics.observe_job(name, outcome, seconds, result)


def _stuck(job_id: str, limit: float) -> None:
    log.error(
        "job %s ran %.0f s past its %.0f s timeout and could not be stopped: exiting",
        job_id, HARD_GRACE_S, limit,
    )  # fmt: skip
    logging.shutdown()
    os._exit(EXIT_STUCK)
