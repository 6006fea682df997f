"""The two requests that wait, as coroutines: GET /operations/:id/wait and
GET /containers/:id/logs (whose `?follow=1` streams). gunicorn's asgi worker serves
them (see handlers.asgi), so a parked wait costs a few objects on the event loop,
not a thread. Everything short they do (authentication, table reads, enqueuing,
counting the open request) runs on the process's thread pool with the same code as
the WSGI app; only the waiting itself is asynchronous: for an operation, one Redis
subscription per process (`Notifications`); for a log follow, BLPOP on the
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
from handlers.auth import TENANT, Principal
from handlers.body import path_id
from handlers.events import EventsResource, EventStream, event_query, page_answer
from handlers.public.observe import (
    REVOKED,
    Follow,
    LogQuery,
    event,
    log_lines,
    log_query,
    start_event_stream,
)
from handlers.public.operations import (
    SUBSCRIBED_POLL_SECONDS,
    UNSUBSCRIBED_POLL_SECONDS,
    wait_seconds,
)
from infra.host_calls import HostCalls, decode_reply
from infra.jobs import FETCH_LOGS
from infra.open_requests import OpenRequest, OpenRequests
from infra.queue import events_channel, operation_channel, revoked_channel
from services.deps import Deps
from services.events import EventFeed
from services.workloads import WorkloadService
from shared.errors import CorralError, ServiceUnavailable, Unauthorized
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


class Notifications:
    """One Redis connection per process, subscribed to every operation's channel
    (the worker publishes there when an operation finishes), every event log's (a
    commit appended to it) and every key's revocation; it wakes this process's waits
    and follows on them. Started by the first wait, reconnects on its own.

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
    def watch(self, channel: str) -> Iterator[asyncio.Event]:
        """An event set when something is published on `channel` (infra.queue's
        `operation_channel`, `events_channel`, `revoked_channel`)."""
        if self._listener is None or self._listener.done():
            self._listener = asyncio.get_running_loop().create_task(self._listen())
        announced = asyncio.Event()
        self._waiting[channel].add(announced)
        try:
            yield announced
        finally:
            waiters = self._waiting[channel]
            waiters.discard(announced)
            if not waiters:
                del self._waiting[channel]

    async def _listen(self) -> None:
        patterns = [operation_channel("*"), events_channel("*"), revoked_channel("*")]
        while True:
            try:
                async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.psubscribe(*patterns)
                    self.connected = True
                    # What was announced while down is read again; a revocation is
                    # announced only when it happens (its request is refused anyway).
                    revocations = revoked_channel("")
                    for channel, waiters in self._waiting.items():
                        if not channel.startswith(revocations):
                            for announced in waiters:
                                announced.set()
                    async for message in pubsub.listen():
                        channel = message["channel"].decode()
                        for announced in self._waiting.get(channel, ()):
                            announced.set()
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

    def __init__(self, deps: Deps, pool: Pool, notifications: Notifications) -> None:
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
                op = await self._wait(principal, operation_id, deadline, req)
            finally:
                await self._pool.run(self._open.end, parked)
        resp.media = views.operation(op)

    async def _wait(
        self, principal: Principal, operation_id: str, deadline: float, req: falcon.asgi.Request
    ) -> Operation:
        read = self._deps.repo.operations.get
        cluster_id = principal.cluster_id
        gone = client_gone(req)
        with (
            self._notifications.watch(operation_channel(operation_id)) as finished,
            self._notifications.watch(revoked_channel(principal.key_id)) as revoked,
        ):
            # Read again once watched: it may have finished before.
            op = await self._pool.run(read, cluster_id, operation_id)
            while not op.status.is_finished:
                left = deadline - time.monotonic()
                if left <= 0 or gone.is_set():
                    break
                # Subscribed, only a notification (or the deadline) needs a read.
                pause = left if self._notifications.connected else UNSUBSCRIBED_POLL_SECONDS
                await first_of([finished, gone, revoked], min(left, pause))
                if revoked.is_set():
                    raise Unauthorized("The API key was revoked.")
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
        notifications: Notifications,
    ) -> None:
        self._deps = deps
        self._workloads = workloads
        self._pool = pool
        self._redis = redis_client
        self._notifications = notifications
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
        revoked = self._notifications.watch(revoked_channel(principal.key_id))
        resp.stream = self._follow(workload, query, lines, following, client_gone(req), revoked)

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
        revocation: contextlib.AbstractContextManager[asyncio.Event],
    ) -> AsyncIterator[bytes]:
        follow = Follow(self._deps.settings, query.since_ns)
        try:
            with revocation as revoked:
                yield follow.first(first)
                while (pause := follow.pause()) is not None:
                    await first_of([gone, revoked], pause)
                    if revoked.is_set():
                        yield REVOKED
                        return
                    if gone.is_set():
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


class EventFollows:
    """GET /events (a tenant's) and GET /api/v1/events (an operator's), as
    handlers.events answers them; a follow streams without holding a thread, woken
    by the commits' notifications (and reading every few seconds in case one was
    missed), and ends at once when its key is revoked."""

    def __init__(
        self, deps: Deps, pool: Pool, notifications: Notifications, events: EventsResource
    ) -> None:
        self.auth = events.auth
        self._deps = deps
        self._pool = pool
        self._notifications = notifications
        self._events = events
        self._feed = EventFeed(deps.repo)
        self._open = OpenRequests(deps.redis, deps.settings.max_open_per_key)

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        query = event_query(req, operator=self._events.operator)
        position = await self._pool.run(self._events.position, req, query)
        if not query.follow:
            resp.media = await self._pool.run(page_answer, self._feed, position, query)
            return
        cap = self._deps.settings.events_follow_cap_seconds
        stream = EventStream(self._feed, position, query, cap)
        principal = req.context.principal
        following = await self._pool.run(self._open.begin, principal.key_id, cap)
        start_event_stream(resp)
        resp.stream = self._follow(stream, following, principal.key_id, client_gone(req))

    async def _follow(
        self, stream: EventStream, following: OpenRequest, key_id: str, gone: asyncio.Event
    ) -> AsyncIterator[bytes]:
        watch = self._notifications.watch
        try:
            with contextlib.ExitStack() as watching:
                revoked = watching.enter_context(watch(revoked_channel(key_id)))
                watched: set[str] = set()
                appended: list[asyncio.Event] = []

                def watch_new_logs() -> None:
                    # The operator's feed takes in clusters made since it began.
                    for log in stream.position.logs.keys() - watched:
                        appended.append(watching.enter_context(watch(events_channel(log))))
                        watched.add(log)

                watch_new_logs()
                yield b": following\n\n" + await self._pool.run(stream.read)
                watch_new_logs()
                while (left := stream.left()) > 0:
                    poll = self._deps.settings.events_poll_seconds
                    if self._notifications.connected:
                        poll = max(poll, SUBSCRIBED_POLL_SECONDS)
                    await first_of([*appended, gone, revoked], min(left, poll))
                    if revoked.is_set():
                        yield REVOKED
                        return
                    if gone.is_set():
                        return  # nobody reads the stream
                    for woken in appended:
                        woken.clear()  # before the read: a commit after it wakes us again
                    yield await self._pool.run(stream.read)
                    watch_new_logs()
                yield stream.cap_reached()
        finally:
            await self._pool.run(self._open.end, following)
