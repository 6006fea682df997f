"""The job queue (rq on Redis). Jobs are the registry's (`infra.jobs`), referenced
by dotted path so that the handlers never import worker code; arguments are JSON;
job id = operation id, or the schedule tick for a periodic job."""

from __future__ import annotations

from typing import Any

from redis import Redis
from redis.exceptions import RedisError

from infra.jobs import DELIVER_WEBHOOKS, RUN_OPERATION, Job, Lane, Schedule
from shared import trace
from shared.errors import ServiceUnavailable
from shared.models import Operation, Workload
from shared.settings import Settings

# Transient host errors are retried by rq with these pauses (seconds); the job
# records the failure itself once no retry is left (see workers.jobs).
RETRY_INTERVALS = [2, 10, 30]
FAILED_KEPT_SECONDS = 7 * 24 * 3600
# A periodic tick's job that no worker picked up within this time is dropped: a
# later tick does the same work.
TICK_STALE_AFTER_SECONDS = 600
# A finished tick's job is kept this long, and while it exists the same tick cannot
# be enqueued again (Lambda retries an asynchronous invocation within minutes).
TICK_KEPT_SECONDS = 3600
# A host's failed share of a pass is kept (and blocks that host's next one) this long.
HOST_JOB_FAILED_KEPT_SECONDS = 60
# Set once a webhook exists in the table (named after it): commits then enqueue
# deliveries.
WEBHOOKS_EXIST = "corral:webhooks:{table}"
# The job meta field holding the id of the request that enqueued it (shared.trace).
REQUEST_ID_META = "request_id"
# The job meta fields holding the id of an operation's workload and, when its enqueuer
# had the workload at hand, of the workload's host and egg.
WORKLOAD_ID_META = "workload_id"
HOST_ID_META = "host_id"
EGG_ID_META = "egg_id"


def make_redis(settings: Settings) -> Redis[bytes]:
    return Redis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=3)


class JobQueue:
    def __init__(self, redis: Redis[bytes], settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self._queue: Any = None

    @property
    def queue(self) -> Any:
        """The rq queue of the operations lane, built on first use: importing rq
        pulls in its worker machinery, which the Lambda cold path should not pay
        for on reads."""
        if self._queue is None:
            from rq import Queue
            from rq.serializers import JSONSerializer

            self._queue = Queue(
                Lane.OPERATIONS.queue_name(self.settings),
                connection=self.redis,
                serializer=JSONSerializer,
            )
        return self._queue

    def enqueue_operation(self, operation: Operation, workload: Workload | None = None) -> None:
        """Enqueue the job that carries out `operation` (on `workload`, when the caller
        has it). Enqueuing the same operation again while its job exists is a no-op."""
        from rq import Retry

        if trace.job_id.get() is None:  # a request's: its log line names the operation
            trace.operation_id.set(operation.id)
        # Lets the job read the operation, its workload and the workload's host and egg
        # at once. In the meta, not the arguments: a worker of an older release runs the
        # job all the same.
        meta = {WORKLOAD_ID_META: operation.workload_id}
        if workload is not None:
            meta |= {HOST_ID_META: workload.host_id, EGG_ID_META: workload.egg_id}
        self._enqueue(
            RUN_OPERATION,
            [operation.cluster_id, operation.id],
            meta=meta,
            job_id=operation.id,
            retry=Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS),
            job_timeout=self.settings.job_timeout_seconds,
            result_ttl=3600,
        )

    def enqueue_job(self, job: Job, args: list[Any], *, job_id: str) -> bool:
        """Enqueue a one-off job under a deterministic id (a second enqueue while it
        exists is a no-op). Returns True when this call enqueued it."""
        return self._enqueue(
            job, args, job_id=job_id, job_timeout=self.settings.job_timeout_seconds, result_ttl=3600
        )

    def enqueue_periodic(self, schedule: Schedule, job_id: str) -> bool:
        """Enqueue `schedule`'s job as job `job_id` (its tick) unless a job with that
        id exists already. Returns True when this call enqueued it."""
        return self._enqueue(
            schedule.job,
            [],
            job_id=job_id,
            ttl=TICK_STALE_AFTER_SECONDS,
            job_timeout=schedule.timeout_seconds,
            result_ttl=TICK_KEPT_SECONDS,
        )

    def enqueue_host_job(self, job: Job, host_id: str, *, timeout_seconds: int) -> bool:
        """Enqueue one host's share of a periodic pass, as job `<job>-<host id>`, unless
        that host's previous one is still waiting or running (a slow host skips a pass
        rather than piling up). Returns True when this call enqueued it."""
        return self._enqueue(
            job,
            [host_id],
            job_id=host_job_id(job, host_id),
            ttl=TICK_STALE_AFTER_SECONDS,
            job_timeout=timeout_seconds,
            result_ttl=0,  # done: the next pass may enqueue it again
            failure_ttl=HOST_JOB_FAILED_KEPT_SECONDS,
        )

    def _enqueue(
        self,
        job: Job,
        args: list[Any],
        *,
        job_id: str,
        meta: dict[str, str] | None = None,
        **options: Any,
    ) -> bool:
        from rq.exceptions import DuplicateJobError

        # Only the operations lane is served here; priority jobs go through
        # infra.host_calls, which waits for their answer.
        assert job.lane is Lane.OPERATIONS, job
        meta = dict(meta or {})
        request_id = trace.request_id.get()
        if request_id:  # the worker logs under the id of the request that asked for the job
            meta[REQUEST_ID_META] = request_id
        try:
            self.queue.enqueue(
                job.function,
                *args,
                job_id=job_id,
                unique=True,
                failure_ttl=options.pop("failure_ttl", FAILED_KEPT_SECONDS),
                meta=meta or None,
                **options,
            )
        except DuplicateJobError:
            return False
        except RedisError as exc:
            raise ServiceUnavailable("The job queue did not answer.") from exc
        return True

    def requeue_operation(self, operation: Operation, *, replace_started: bool = True) -> bool:
        """Enqueue `operation` again after its job was lost or its worker died (see
        `_make_way`). Returns True when a job was enqueued."""
        if not self._make_way(operation.id, replace_started=replace_started):
            return False
        self.enqueue_operation(operation)
        return True

    def requeue_job(self, job: Job, args: list[Any], *, job_id: str, replace_started: bool) -> bool:
        """Enqueue one-off job `job_id` again after it was lost or its worker died (see
        `_make_way`). Returns True when a job was enqueued."""
        if not self._make_way(job_id, replace_started=replace_started):
            return False
        return self.enqueue_job(job, args, job_id=job_id)

    def _make_way(self, job_id: str, *, replace_started: bool) -> bool:
        """Whether job `job_id` may be enqueued again, removing what is left of it: a
        job still waiting in the queue is left alone, and so is a started one unless
        `replace_started` (its worker is known dead); a job in any other state (failed,
        stopped, or gone with a flushed Redis) is replaced."""
        from rq.exceptions import NoSuchJobError
        from rq.job import Job as RqJob
        from rq.job import JobStatus
        from rq.serializers import JSONSerializer

        try:
            job = RqJob.fetch(job_id, connection=self.redis, serializer=JSONSerializer)
        except NoSuchJobError:
            return True
        except RedisError as exc:
            raise ServiceUnavailable("The job queue did not answer.") from exc
        waiting = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED}
        if not replace_started:
            waiting.add(JobStatus.STARTED)
        if job.get_status() in waiting:
            return False
        job.delete()
        return True

    def announce_events(self, logs: set[str]) -> None:
        """Wake the followers of these event logs (a commit appended to them) and,
        once any webhook exists, enqueue their deliveries. A missed notification only
        makes a follower find the events at its next poll, and a delivery wait for the
        schedule's catch-up (workers.webhooks.deliver_all)."""
        try:
            with self.redis.pipeline(transaction=False) as pipe:
                for log in logs:
                    pipe.publish(events_channel(log), "1")
                pipe.exists(WEBHOOKS_EXIST.format(table=self.settings.table_name))
                *_, webhooks = pipe.execute()
            if webhooks:
                for log in logs:
                    # One job per log at a time (its id): it delivers what is new when it runs.
                    self._enqueue(DELIVER_WEBHOOKS, [log], job_id=f"webhooks-{log}", result_ttl=0)
        except (RedisError, ServiceUnavailable):
            return

    def webhooks_exist(self) -> None:
        """From now on commits enqueue webhook deliveries (set when one is registered,
        and by the schedule's catch-up while any exists)."""
        try:
            self.redis.set(WEBHOOKS_EXIST.format(table=self.settings.table_name), 1)
        except RedisError:
            return  # the schedule's catch-up delivers meanwhile

    def announce_revoked(self, key_id: str) -> None:
        """End the revoked key's open waits and follows in every API process."""
        try:
            self.redis.publish(revoked_channel(key_id), "1")
        except RedisError:
            return  # its streams end at their cap; no new request gets through

    def notify_finished(self, operation_id: str, status: str) -> None:
        """Wake the clients long-polling this operation."""
        try:
            self.redis.publish(operation_channel(operation_id), status)
        except RedisError:
            return  # a missed notification only makes a waiter re-read a little later


def host_job_id(job: Job, host_id: str) -> str:
    return f"{job.function.rsplit('.', 1)[1]}-{host_id}"


def operation_channel(operation_id: str) -> str:
    return f"corral:op:{operation_id}"


def events_channel(log: str) -> str:
    return f"corral:events:{log}"


def revoked_channel(key_id: str) -> str:
    return f"corral:revoked:{key_id}"
