"""Asking a worker to read something from a host now, and waiting briefly for it.

Handlers never talk to hosts (they import no driver), yet a few reads must come from
the host at request time: a container's logs. The handler enqueues the registry's
job (by dotted path, see infra.jobs) on the priority queue with a reply key and a
deadline, then blocks on the key (BLPOP) until the worker pushes its answer or the
deadline passes.

A job no worker started in time expires from the queue (rq `ttl`); one started after
its deadline does nothing, since nobody waits for its answer any more.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable
from typing import Any

from redis import Redis
from redis.exceptions import RedisError

from infra.jobs import Job, Lane
from shared.errors import HostTimeout, ServiceUnavailable
from shared.settings import Settings

REPLY_TTL_SECONDS = 60
# How long a started call may run on the worker before rq stops it.
CALL_JOB_TIMEOUT_SECONDS = 60


def reply_key(call_id: str) -> str:
    return f"corral:reply:{call_id}"


def past_deadline(deadline: float, clock: Callable[[], float] = time.time) -> bool:
    return clock() > deadline


def reply(redis: Redis[bytes], key: str, answer: Any) -> None:
    """The worker's side: hand `answer` (JSON) to the waiting handler."""
    pipe = redis.pipeline()
    pipe.rpush(key, json.dumps(answer))
    pipe.expire(key, REPLY_TTL_SECONDS)
    pipe.execute()


class HostCalls:
    def __init__(
        self,
        redis: Redis[bytes],
        settings: Settings,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self._redis = redis
        self._settings = settings
        self._new_id = new_id
        self._queue: Any = None

    @property
    def queue(self) -> Any:
        if self._queue is None:
            from rq import Queue
            from rq.serializers import JSONSerializer

            self._queue = Queue(
                Lane.PRIORITY.queue_name(self._settings),
                connection=self._redis,
                serializer=JSONSerializer,
            )
        return self._queue

    def call(self, job: Job, args: list[Any], timeout: float) -> Any:
        """Run `job(reply_key, deadline, *args)` on a worker and return what it replies.

        Raises HostTimeout when no answer came within `timeout` seconds, and
        ServiceUnavailable when the queue does not answer."""
        key = self.send(job, args, timeout)
        try:
            answer = self._redis.blpop([key], timeout=max(timeout, 0.01))
        except RedisError as exc:
            raise ServiceUnavailable("The job queue did not answer.") from exc
        return decode_reply(answer)

    def send(self, job: Job, args: list[Any], timeout: float) -> str:
        """Enqueue the call and return the key its answer will be pushed to: a caller
        that waits its own way (asyncio) then BLPOPs it and `decode_reply`s."""
        call_id = self._new_id()
        key = reply_key(call_id)
        deadline = time.time() + timeout
        # Only the priority lane is served here: a request is waiting.
        assert job.lane is Lane.PRIORITY, job
        try:
            self.queue.enqueue(
                job.function,
                key,
                deadline,
                *args,
                job_id=f"call-{call_id}",
                ttl=math.ceil(timeout) + 1,
                job_timeout=CALL_JOB_TIMEOUT_SECONDS,
                result_ttl=0,
                failure_ttl=REPLY_TTL_SECONDS,
            )
        except RedisError as exc:
            raise ServiceUnavailable("The job queue did not answer.") from exc
        return key


def decode_reply(answer: tuple[bytes, bytes] | None) -> Any:
    """What BLPOP on a reply key returned: the worker's answer; HostTimeout if none came."""
    if answer is None:
        raise HostTimeout()
    return json.loads(answer[1])
