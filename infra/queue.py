"""The job queue (rq on Redis). Jobs are referenced by dotted path so that the
handlers never import worker code; arguments are JSON; job id = operation id."""

from __future__ import annotations

from typing import Any

from redis import Redis
from redis.exceptions import RedisError

from shared.errors import ServiceUnavailable
from shared.models import Operation
from shared.settings import Settings

RUN_OPERATION = "workers.jobs.run_operation"

# Transient host errors are retried by rq with these pauses (seconds); the job
# records the failure itself once no retry is left (see workers.jobs).
RETRY_INTERVALS = [2, 10, 30]


def make_redis(settings: Settings) -> Redis[bytes]:
    return Redis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=3)


class JobQueue:
    def __init__(self, redis: Redis[bytes], settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self._queue: Any = None

    @property
    def queue(self) -> Any:
        """The rq queue, built on first use: importing rq pulls in its worker
        machinery, which the Lambda cold path should not pay for on reads."""
        if self._queue is None:
            from rq import Queue
            from rq.serializers import JSONSerializer

            self._queue = Queue(
                self.settings.queue_name, connection=self.redis, serializer=JSONSerializer
            )
        return self._queue

    def enqueue_operation(self, operation: Operation) -> None:
        """Enqueue the job that carries out `operation`. Enqueuing the same
        operation again while its job exists is a no-op."""
        self._enqueue(RUN_OPERATION, [operation.cluster_id, operation.id], job_id=operation.id)

    def _enqueue(self, func: str, args: list[Any], *, job_id: str) -> None:
        from rq import Retry
        from rq.exceptions import DuplicateJobError

        try:
            self.queue.enqueue(
                func,
                *args,
                job_id=job_id,
                unique=True,
                retry=Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS),
                job_timeout=self.settings.job_timeout_seconds,
                result_ttl=3600,
                failure_ttl=7 * 24 * 3600,
            )
        except DuplicateJobError:
            return
        except RedisError as exc:
            raise ServiceUnavailable("The job queue did not answer.") from exc

    def requeue_operation(self, operation: Operation, *, replace_started: bool = True) -> bool:
        """Enqueue `operation` again after its job was lost or its worker died.

        A job still waiting in the queue is left alone, and so is a started one unless
        `replace_started` (its worker is known dead); a job in any other state (failed,
        stopped, or gone with a flushed Redis) is replaced. Returns True when a job was
        enqueued."""
        from rq.exceptions import NoSuchJobError
        from rq.job import Job, JobStatus
        from rq.serializers import JSONSerializer

        try:
            job = Job.fetch(operation.id, connection=self.redis, serializer=JSONSerializer)
        except NoSuchJobError:
            job = None
        except RedisError as exc:
            raise ServiceUnavailable("The job queue did not answer.") from exc
        if job is not None:
            waiting = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED}
            if not replace_started:
                waiting.add(JobStatus.STARTED)
            if job.get_status() in waiting:
                return False
            job.delete()
        self.enqueue_operation(operation)
        return True

    def notify_finished(self, operation_id: str, status: str) -> None:
        """Wake the clients long-polling this operation."""
        try:
            self.redis.publish(operation_channel(operation_id), status)
        except RedisError:
            return  # a missed notification only makes a waiter re-read a little later


def operation_channel(operation_id: str) -> str:
    return f"corral:op:{operation_id}"
