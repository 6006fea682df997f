"""The two requests that wait, as coroutines: GET /operations/:id/wait and
GET /containers/:id/logs (whose `?follow=1` streams). gunicorn's asgi worker serves
them (see handlers.asgi), so a parked wait costs a few objects on the event loop,
not a thread. Everything short they do (authentication, table reads, enqueuing,
counting the open request) runs on the process's thread pool with the same code as
the WSGI app; only the waiting itself is asynchronous: for an operation, one Redis
subscription per process (`OperationNotifications`); for a log follow, BLPOP on the
worker's reply and the pause between polls.

A client that hangs up ends its wait or follow at once (`ClientGone`, set by
handlers.asgi), and its open request with it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Executor
from typing import Any, TypeVar

import falcon.asgi
import redis.asyncio
from redis.exceptions import RedisError

from handlers import views
from handlers.auth import TENANT
from handlers.body import path_id
from handlers.public.observe import (
    Follow,
    LogQuery,
    event,
    log_lines,
    log_query,
    start_event_stream,
)
from handlers.public.operations import UNSUBSCRIBED_POLL_SECONDS, wait_seconds
from infra.host_calls import HostCalls, decode_reply
from infra.jobs import FETCH_LOGS
from infra.open_requests import OpenRequest, OpenRequests
from infra.queue import operation_channel
from services.deps import Deps
from services.workloads import WorkloadService
from shared.errors import CorralError, ServiceUnavailable
from shared.health import MAX_TAIL, LogLine
from shared.models import Operation, Workload

log = logging.getLogger("corral.api")
T = TypeVar("T")
CLIENT_GONE = "corral.client_gone"  # the scope entry handlers.asgi sets: an asyncio.Event
RECONNECT_SECONDS = 1.0


class Pool:
    """Runs the short blocking calls (table, Redis, rq) on the process's threads."""

    def __init__(self, executor: Executor) -> None:
        self._executor = executor

    async def run(self, call: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, call, *args)


class OperationNotifications:
    """One Redis connection per process, subscribed to every operation's channel
    (the worker publishes there when an operation finishes); it wakes this process's
    waits on that operation. Started by the first wait, reconnects on its own.

    While it is `connected`, a wait reads the table only when woken: a notification
    can be missed only while the subscription is down, so each time it comes (back)
    up it wakes every wait to read once. A thousand parked waits then cost the table
    nothing (polling every 5 s cost it 200 reads a second)."""

    def __init__(self, redis_client: redis.asyncio.Redis[bytes]) -> None:
        self._redis = redis_client
        self._waiting: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._listener: asyncio.Task[None] | None = None
        self.connected = False

    @contextlib.contextmanager
    def watch(self, operation_id: str) -> Iterator[asyncio.Event]:
        """An event set when `operation_id` is announced finished."""
        if self._listener is None or self._listener.done():
            self._listener = asyncio.get_running_loop().create_task(self._listen())
        finished = asyncio.Event()
        self._waiting[operation_id].add(finished)
        try:
            yield finished
        finally:
            waiters = self._waiting[operation_id]
            waiters.discard(finished)
            if not waiters:
                del self._waiting[operation_id]

    async def _listen(self) -> None:
        prefix = operation_channel("")
        while True:
            try:
                async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.psubscribe(operation_channel("*"))
                    self.connected = True
                    for waiters in self._waiting.values():
                        for finished in waiters:
                            finished.set()
                    async for message in pubsub.listen():
                        channel = message["channel"].decode()
                        for finished in self._waiting.get(channel.removeprefix(prefix), ()):
                            finished.set()
            except (RedisError, OSError) as exc:
                log.warning("operation notifications lost (%s); reconnecting", exc)
            finally:
                self.connected = False
            await asyncio.sleep(RECONNECT_SECONDS)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener


async def until(event: asyncio.Event, seconds: float) -> bool:
    """Wait at most `seconds` for `event`; whether it was set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout=max(seconds, 0))
    return event.is_set()


async def first_of(events: list[asyncio.Event], seconds: float) -> None:
    """Wait at most `seconds` for any of `events`."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=max(seconds, 0), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def client_gone(req: falcon.asgi.Request) -> asyncio.Event:
    gone: asyncio.Event = req.scope[CLIENT_GONE]
    return gone


class OperationWait:
    """GET /operations/:id/wait?timeout=S, as handlers.public.operations.OperationWait
    answers it, without holding a thread while it waits."""

    auth = TENANT

    def __init__(self, deps: Deps, pool: Pool, notifications: OperationNotifications) -> None:
        self._deps = deps
        self._pool = pool
        self._notifications = notifications
        self._open = OpenRequests(deps.redis, deps.settings.max_open_per_key)

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, operation_id: str
    ) -> None:
        seconds = wait_seconds(req, self._deps.settings)
        deadline = time.monotonic() + seconds
        principal = req.context.principal
        path_id(operation_id, "Operation")
        read = self._deps.repo.operations.get
        op = await self._pool.run(read, principal.cluster_id, operation_id)
        if not op.status.is_finished and seconds > 0:
            parked = await self._pool.run(self._open.begin, principal.key_id, seconds)
            try:
                op = await self._wait(principal.cluster_id, operation_id, deadline, req)
            finally:
                await self._pool.run(self._open.end, parked)
        resp.media = views.operation(op)

    async def _wait(
        self, cluster_id: str, operation_id: str, deadline: float, req: falcon.asgi.Request
    ) -> Operation:
        read = self._deps.repo.operations.get
        gone = client_gone(req)
        with self._notifications.watch(operation_id) as finished:
            # Read again once watched: it may have finished before.
            op = await self._pool.run(read, cluster_id, operation_id)
            while not op.status.is_finished:
                left = deadline - time.monotonic()
                if left <= 0 or gone.is_set():
                    break
                # Subscribed, only a notification (or the deadline) needs a read.
                pause = left if self._notifications.connected else UNSUBSCRIBED_POLL_SECONDS
                await first_of([finished, gone], min(left, pause))
                if gone.is_set():
                    break  # nobody reads the answer
                finished.clear()
                op = await self._pool.run(read, cluster_id, operation_id)
        return op


class ContainerLogs:
    """GET /containers/:id/logs?tail=N&since=T&follow=1, as
    handlers.public.observe.ContainerLogs answers it; a follow streams without
    holding a thread."""

    auth = TENANT

    def __init__(
        self,
        deps: Deps,
        workloads: WorkloadService,
        pool: Pool,
        redis_client: redis.asyncio.Redis[bytes],
    ) -> None:
        self._deps = deps
        self._workloads = workloads
        self._pool = pool
        self._redis = redis_client
        self._calls = HostCalls(deps.redis, deps.settings)
        self._open = OpenRequests(deps.redis, deps.settings.max_open_per_key)

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, container_id: str
    ) -> None:
        path_id(container_id, "Container")
        query = log_query(req)
        principal = req.context.principal
        workload = await self._pool.run(self._workloads.live, principal.cluster_id, container_id)
        if not query.follow:
            resp.media = views.logs(workload.id, *await self._read(workload, query.tail,
                                                                   query.since_ns))  # fmt: skip
            return
        cap = self._deps.settings.logs_follow_cap_seconds
        following = await self._pool.run(self._open.begin, principal.key_id, cap)
        try:
            lines, _ = await self._read(workload, query.tail, query.since_ns)
        except BaseException:
            await self._pool.run(self._open.end, following)
            raise
        start_event_stream(resp)
        resp.stream = self._follow(workload, query, lines, following, client_gone(req))

    async def _read(
        self, workload: Workload, tail: int, since_ns: int | None
    ) -> tuple[list[LogLine], bool]:
        timeout = self._deps.settings.logs_timeout_seconds
        args = [workload.host_id, workload.id, tail, since_ns]
        key = await self._pool.run(self._calls.send, FETCH_LOGS, args, timeout)
        try:
            answer = await self._redis.blpop([key], timeout=max(timeout, 0.01))
        except RedisError as exc:
            raise ServiceUnavailable("The job queue did not answer.") from exc
        return log_lines(decode_reply(answer))

    async def _follow(
        self,
        workload: Workload,
        query: LogQuery,
        first: list[LogLine],
        following: OpenRequest,
        gone: asyncio.Event,
    ) -> AsyncIterator[bytes]:
        follow = Follow(self._deps.settings, query.since_ns)
        try:
            yield follow.first(first)
            while (pause := follow.pause()) is not None:
                if await until(gone, pause):
                    return  # nobody reads the stream
                if follow.over():
                    break
                try:
                    lines, _ = await self._read(workload, MAX_TAIL, follow.cursor.since_ns)
                except CorralError as exc:
                    yield event(exc.envelope(), "error")
                    return
                yield follow.next(lines)
            yield follow.cap_reached()
        finally:
            await self._pool.run(self._open.end, following)
