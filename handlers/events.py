"""The event log, read: GET /api/public/clusters/v1/events (a tenant: its cluster's
log) and GET /api/v1/events (an operator: every log, or one cluster's; filters by
actor and resource). `?after=<cursor>` pages; `?follow=1` streams server-sent
events (`id:` the cursor, so a reconnection's `Last-Event-ID` resumes right after
the last event received: no duplicate, no gap).

The follow here serves the WSGI app (the Lambda entry, the tests), polling; gunicorn
serves the same routes with coroutines woken by the commit's notification
(handlers.waits). Both count a follow against the key's open requests."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import falcon

from handlers import shapes, views
from handlers.auth import OPERATOR, TENANT
from handlers.declare import EVENT_STREAM, Query, responds
from handlers.pages import limit_of
from handlers.public.observe import REVOKED, start_event_stream
from handlers.public.observe import event as sse_event
from handlers.revocation import Watch
from infra.open_requests import OpenRequest, OpenRequests
from services.deps import Deps
from services.events import SCAN_LIMIT, EventFeed, Position, all_logs, one_log
from shared.errors import InvalidInput, NotFound, TooManyRequests
from shared.events import Event, EventFilter, parse_types

LAST_EVENT_ID = "Last-Event-ID"
EVENT_QUERY = (
    Query("after", {"type": "string", "maxLength": 4096}, "The cursor to read after."),
    Query(
        "types",
        {"type": "string", "maxLength": 1024},
        "Event types, comma-separated (`workload.created`; `workload` for all of a kind).",
    ),
    Query("limit", {"type": "integer", "minimum": 1, "maximum": 100}, "Events per page (50)."),
    Query("follow", {"type": "boolean"}, "Stream the log as server-sent events."),
)
OPERATOR_QUERY = (
    *EVENT_QUERY,
    Query(
        "cluster",
        {"type": "string", "maxLength": 64},
        "Only this cluster's log.",
        errors=(NotFound,),
    ),
    Query("actor", {"type": "string", "maxLength": 64}, "Only changes made by this key id."),
    Query("resource", {"type": "string", "maxLength": 64}, "Only changes of this resource id."),
)
DEFAULT_PAGE = 50


@dataclass(frozen=True)
class EventQuery:
    cursor: str | None
    wanted: EventFilter
    limit: int
    follow: bool


def event_query(req: falcon.Request, *, operator: bool) -> EventQuery:
    """`after` (or the `Last-Event-ID` header a reconnecting SSE client sends),
    `types`, `limit`, `follow`; an operator's `actor` and `resource`."""
    cursor = req.get_header(LAST_EVENT_ID) or req.get_param("after")
    types = parse_types(req.get_param_as_list("types") or [])
    actor = resource = None
    if operator:
        actor = _id_param(req, "actor")
        resource = _id_param(req, "resource")
    return EventQuery(
        cursor,
        EventFilter(types=types, actor=actor, resource_id=resource),
        limit_of(req, DEFAULT_PAGE, 100),
        _flag(req, "follow"),
    )


def _flag(req: falcon.Request, name: str) -> bool:
    raw = (req.get_param(name) or "0").lower()
    if raw not in ("1", "true", "0", "false"):
        raise InvalidInput(f"Query parameter {name} must be a boolean (1, 0, true or false).")
    return raw in ("1", "true")


def _id_param(req: falcon.Request, name: str) -> str | None:
    value = req.get_param(name)
    if value is not None and (not value or len(value) > 64 or not value.isprintable()):
        raise InvalidInput(f"Query parameter {name} must be an id.")
    return value


class EventStream:
    """Where one follow stands and the bytes it sends next, whoever waits between
    reads (a thread here, a coroutine in handlers.waits)."""

    def __init__(self, feed: EventFeed, position: Position, query: EventQuery, cap: float) -> None:
        self.feed = feed
        self.position = position
        self.query = query
        self.cap = cap
        self.end = time.monotonic() + cap

    def read(self) -> bytes:
        """The events committed since the last read, as SSE (a comment when none)."""
        self.feed.join_new_logs(self.position)
        chunks: list[bytes] = []
        while True:
            start = Position(dict(self.position.logs), self.position.merged)
            found = self.feed.page(self.position, self.query.wanted, 100)
            chunks += [
                sse_event(views.event(event, cursor), event.type, cursor)
                for event, cursor in with_cursors(start, found, self.position)
            ]
            moved = max(n - start.logs.get(log, 0) for log, n in self.position.logs.items())
            if len(found) < 100 and moved < SCAN_LIMIT:
                break  # every log read to its end
        return b"".join(chunks) or b": waiting\n\n"

    def left(self) -> float:
        return self.end - time.monotonic()

    def cap_reached(self) -> bytes:
        return sse_event({"reason": "cap", "seconds": self.cap}, "end")


def with_cursors(start: Position, found: list[Event], end: Position) -> list[tuple[Event, str]]:
    """Each event with the cursor that resumes right after it (the last one: `end`,
    which is also past the events the filter left out)."""
    out = []
    walking = Position(dict(start.logs), start.merged)
    for index, event in enumerate(found):
        walking.logs[event.log] = event.sequence
        out.append((event, end.cursor() if index == len(found) - 1 else walking.cursor()))
    return out


def page_answer(feed: EventFeed, position: Position, query: EventQuery) -> dict[str, object]:
    start = Position(dict(position.logs), position.merged)
    found = feed.page(position, query.wanted, query.limit)
    return {
        "events": [views.event(e, c) for e, c in with_cursors(start, found, position)],
        "cursor": position.cursor(),
    }


class EventsResource:
    """The responder both routes share: a page, or a follow."""

    auth: str
    operator = False

    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._feed = EventFeed(deps.repo)
        self._open = OpenRequests(deps.redis, deps.settings.max_open_per_key)

    def position(self, req: falcon.Request, query: EventQuery) -> Position:
        raise NotImplementedError

    def answer(self, req: falcon.Request, resp: falcon.Response) -> None:
        query = event_query(req, operator=self.operator)
        position = self.position(req, query)
        if not query.follow:
            resp.media = page_answer(self._feed, position, query)
            return
        # A thread holds this follow (the Lambda entry cannot stream at all): no
        # longer than a wait.
        settings = self._deps.settings
        cap = min(settings.events_follow_cap_seconds, settings.wait_cap_seconds)
        stream = EventStream(self._feed, position, query, cap)
        key_id = req.context.principal.key_id
        following = self._open.begin(key_id, stream.cap)
        start_event_stream(resp)
        resp.stream = self._follow(stream, following, key_id)

    def _follow(self, stream: EventStream, following: OpenRequest, key_id: str) -> Iterator[bytes]:
        """Polls the log; a revocation of the key ends the stream at once."""
        poll = self._deps.settings.events_poll_seconds
        try:
            with Watch(self._deps.redis, key_id) as watch:
                yield b": following\n\n" + stream.read()
                while stream.left() > 0:
                    watch.pause(min(poll, stream.left()))
                    if watch.revoked:
                        yield REVOKED
                        return
                    yield stream.read()
                yield stream.cap_reached()
        finally:
            self._open.end(following)


class TenantEvents(EventsResource):
    """GET /events: the cluster's log."""

    auth = TENANT

    def position(self, req: falcon.Request, query: EventQuery) -> Position:
        return one_log(req.context.principal.cluster_id, query.cursor)

    @responds(
        200,
        shapes.EventPageView,
        query=EVENT_QUERY,
        streams=(EVENT_STREAM,),
        errors=(TooManyRequests,),
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.answer(req, resp)


class OperatorEvents(EventsResource):
    """GET /api/v1/events: every log (or one cluster's with `cluster`)."""

    auth = OPERATOR
    operator = True

    def position(self, req: falcon.Request, query: EventQuery) -> Position:
        cluster_id = _id_param(req, "cluster")
        if cluster_id is not None:
            self._deps.repo.clusters.get(cluster_id)  # not_found for an unknown one
            return one_log(cluster_id, query.cursor)
        cluster_ids = [c.id for c in self._deps.repo.clusters.list()]
        return all_logs(cluster_ids, query.cursor)

    @responds(
        200,
        shapes.EventPageView,
        query=OPERATOR_QUERY,
        streams=(EVENT_STREAM,),
        errors=(TooManyRequests,),
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.answer(req, resp)
