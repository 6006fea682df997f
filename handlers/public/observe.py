"""What a container is doing: its health (from the table, as the collector last
measured it) and its logs (from its host, read by a priority job while the request
waits; `?follow=1` streams new lines as server-sent events).

The follow here serves the WSGI app (the Lambda entry, the tests); gunicorn serves
the same route with coroutines (handlers.waits). Both count a follow against the
key's open requests (infra.open_requests) for as long as it streams."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import falcon

from handlers import shapes, views
from handlers.auth import TENANT
from handlers.body import path_id
from handlers.declare import EVENT_STREAM, Query, responds
from handlers.revocation import Watch
from infra.host_calls import HostCalls
from infra.jobs import FETCH_LOGS
from infra.open_requests import OpenRequest, OpenRequests
from services.deps import Deps
from services.workloads import WorkloadService
from shared.errors import (
    CorralError,
    HostTimeout,
    InvalidInput,
    ServiceUnavailable,
    TooManyRequests,
)
from shared.health import MAX_TAIL, NS_PER_SECOND, LogCursor, LogLine, to_ns
from shared.models import Workload
from shared.settings import Settings

DEFAULT_TAIL = 100
_UNIX_SECONDS = re.compile(r"^(\d{1,11})(?:\.(\d{1,9}))?$")
_LATEST_SINCE_NS = to_ns(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC))
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


class ContainerHealth:
    """GET /containers/:id/health: 002's health object (one table read)."""

    auth = TENANT

    def __init__(self, deps: Deps, workloads: WorkloadService) -> None:
        self._deps = deps
        self._workloads = workloads

    @responds(200, shapes.HealthView)
    def on_get(self, req: falcon.Request, resp: falcon.Response, container_id: str) -> None:
        workload = self._workloads.live(
            req.context.principal.cluster_id, path_id(container_id, "Container")
        )
        resp.media = views.health(workload.health, self._deps.clock())


LOG_QUERY = (
    Query("tail", {"type": "integer", "minimum": 1, "maximum": MAX_TAIL}, "Last lines to read."),
    Query("since", {"type": "string"}, "Lines from this time on: unix seconds or ISO 8601."),
    Query("follow", {"type": "boolean"}, "Stream new lines as server-sent events."),
)


@dataclass(frozen=True)
class LogQuery:
    tail: int = DEFAULT_TAIL
    since_ns: int | None = None
    follow: bool = False


def log_query(req: falcon.Request) -> LogQuery:
    """`tail` (1..10000, default 100), `since` (unix seconds or ISO 8601), `follow`."""
    problems: list[dict[str, str]] = []
    tail, since_ns, follow = DEFAULT_TAIL, None, False
    raw = req.get_param("tail")
    if raw is not None:
        if raw.isascii() and raw.isdigit() and len(raw) <= 5 and 1 <= int(raw) <= MAX_TAIL:
            tail = int(raw)
        else:
            problems.append(_problem("tail", f"must be a whole number from 1 to {MAX_TAIL}"))
    raw = req.get_param("since")
    if raw is not None:
        since_ns = parse_since(raw)
        if since_ns is None:
            problems.append(
                _problem(
                    "since", "must be unix seconds or an ISO 8601 time (e.g. 2024-03-14T10:05:00Z)"
                )
            )
    raw = req.get_param("follow")
    if raw is not None:
        if raw.lower() in _TRUE | _FALSE:
            follow = raw.lower() in _TRUE
        else:
            problems.append(_problem("follow", "must be a boolean (1, 0, true or false)"))
    if problems:
        summary = "; ".join(f"{p['loc']}: {p['message']}" for p in problems)
        raise InvalidInput(f"Query parameters failed validation: {summary}", details=problems)
    return LogQuery(tail, since_ns, follow)


def parse_since(raw: str) -> int | None:
    """Unix seconds (fractions allowed) or ISO 8601 (UTC when no offset) as unix ns."""
    text = raw.strip()
    unix = _UNIX_SECONDS.match(text)
    if unix:
        whole, fraction = unix.groups()
        return int(whole) * NS_PER_SECOND + int((fraction or "").ljust(9, "0"))
    # An unescaped "+" of an offset arrives as a space.
    text = re.sub(r" (\d\d:?\d\d)$", r"+\1", text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    since_ns = to_ns(moment)
    return since_ns if 0 <= since_ns <= _LATEST_SINCE_NS else None


def _problem(name: str, message: str) -> dict[str, str]:
    return {"loc": f"query.{name}", "type": "value_error", "message": message}


class ContainerLogs:
    """GET /containers/:id/logs?tail=N&since=T&follow=1."""

    auth = TENANT

    def __init__(
        self, deps: Deps, workloads: WorkloadService, calls: HostCalls | None = None
    ) -> None:
        self._deps = deps
        self._workloads = workloads
        self._calls = calls or HostCalls(deps.redis, deps.settings)
        self._open = OpenRequests(deps.redis, deps.settings.max_open_per_key)

    @responds(
        200,
        shapes.LogsView,
        query=LOG_QUERY,
        streams=(EVENT_STREAM,),
        errors=(TooManyRequests, HostTimeout, ServiceUnavailable),
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, container_id: str) -> None:
        path_id(container_id, "Container")
        query = log_query(req)
        principal = req.context.principal
        workload = self._workloads.live(principal.cluster_id, container_id)
        if not query.follow:
            resp.media = views.logs(workload.id, *self._read(workload, query.tail, query.since_ns))
            return
        following = self._open.begin(principal.key_id, self._deps.settings.logs_follow_cap_seconds)
        try:
            lines, _ = self._read(workload, query.tail, query.since_ns)
        except BaseException:
            self._open.end(following)
            raise
        start_event_stream(resp)
        resp.stream = self._follow(workload, query, lines, following, principal.key_id)

    def _read(
        self, workload: Workload, tail: int, since_ns: int | None
    ) -> tuple[list[LogLine], bool]:
        return log_lines(
            self._calls.call(
                FETCH_LOGS,
                [workload.host_id, workload.id, tail, since_ns],
                self._deps.settings.logs_timeout_seconds,
            )
        )

    def _follow(
        self,
        workload: Workload,
        query: LogQuery,
        first: list[LogLine],
        following: OpenRequest,
        key_id: str,
    ) -> Iterator[bytes]:
        """Server-sent events: one `message` per line (data: the line's JSON, id: its
        timestamp in ns), a comment while nothing new comes, `error` if the host stops
        answering, and `end` when the cap is reached. The WSGI server closes this
        generator when the client goes, which frees the open request. A revocation of
        the key ends it at once (`end`, reason `revoked`)."""
        follow = Follow(self._deps.settings, query.since_ns)
        try:
            with Watch(self._deps.redis, key_id) as watch:
                yield follow.first(first)
                while (pause := follow.pause()) is not None:
                    watch.pause(pause)
                    if watch.revoked:
                        yield REVOKED
                        return
                    if follow.over():
                        break
                    try:
                        lines, _ = self._read(workload, MAX_TAIL, follow.cursor.since_ns)
                    except CorralError as exc:
                        yield event(exc.envelope(), "error")
                        return
                    yield follow.next(lines)
                yield follow.cap_reached()
        finally:
            self._open.end(following)


class Follow:
    """Where one log follow stands (its cap, its cursor) and the events it sends next,
    whoever does the waiting between polls (a thread here, a coroutine in
    handlers.waits)."""

    def __init__(self, settings: Settings, since_ns: int | None) -> None:
        self.cap = settings.logs_follow_cap_seconds
        self.poll = settings.logs_poll_seconds
        self.end = time.monotonic() + self.cap
        self.cursor = LogCursor(since_ns)

    def first(self, lines: list[LogLine]) -> bytes:
        return b": following\n\n" + events(self.cursor.advance(lines))

    def pause(self) -> float | None:
        """How long to wait before the next poll; None once the cap is reached."""
        left = self.end - time.monotonic()
        return min(self.poll, left) if left > 0 else None

    def over(self) -> bool:
        return time.monotonic() >= self.end

    def next(self, lines: list[LogLine]) -> bytes:
        new = self.cursor.advance(lines)
        return events(new) if new else b": waiting\n\n"

    def cap_reached(self) -> bytes:
        return event({"reason": "cap", "seconds": self.cap}, "end")


def start_event_stream(resp: falcon.Response) -> None:
    resp.content_type = "text/event-stream"
    resp.set_header("Cache-Control", "no-cache")
    resp.set_header("X-Accel-Buffering", "no")  # proxies: pass events on at once


def log_lines(answer: dict[str, Any]) -> tuple[list[LogLine], bool]:
    """The lines of a FETCH_LOGS answer and whether they were truncated."""
    error = answer.get("error")
    if error == "host_timeout":
        raise HostTimeout()
    if error:
        raise ServiceUnavailable("The container's host could not serve its logs.")
    return [LogLine.from_wire(value) for value in answer["lines"]], bool(answer["truncated"])


def events(lines: list[LogLine]) -> bytes:
    return b"".join(event(views.log_line(line), None, line.at_ns) for line in lines)


def event(data: Any, kind: str | None, event_id: int | str | None = None) -> bytes:
    head = f"event: {kind}\n" if kind else ""
    if event_id is not None:
        head += f"id: {event_id}\n"
    return f"{head}data: {json.dumps(data)}\n\n".encode()


# How a follow ends when its key is revoked (every server, every follow).
REVOKED = event({"reason": "revoked"}, "end")
