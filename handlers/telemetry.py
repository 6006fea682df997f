"""What every request leaves behind: a request id (the client's `X-Request-Id`, or a
new one, returned in the same header and carried into the job the request enqueues),
one structured log line, and, under gunicorn, its count and latency for GET /metrics.

The Lambda entry builds the app without metrics: prometheus_client is never imported
on its cold path."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextvars import Token
from typing import Any

import falcon

from handlers.declare import responds
from services.deps import Deps
from shared import trace

log = logging.getLogger("corral.http")

REQUEST_ID_HEADER = "X-Request-Id"
UNMATCHED = "unmatched"
Recorder = Callable[[str, str, int, float], None]


class Telemetry:
    """The app's first middleware (WSGI)."""

    def __init__(self, record: Recorder | None = None) -> None:
        self._record = record

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        request_id = trace.accepted_request_id(req.get_header(REQUEST_ID_HEADER))
        req.context.trace = (
            time.perf_counter(),
            trace.request_id.set(request_id),
            trace.operation_id.set(None),
        )
        resp.set_header(REQUEST_ID_HEADER, request_id)

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool
    ) -> None:
        started, request_token, operation_token = _trace_of(req)
        if started is None:
            return
        seconds = time.perf_counter() - started
        route = req.uri_template or UNMATCHED
        status = resp.status_code
        log.info(
            "%s %s %s",
            req.method,
            req.path,
            status,
            extra={
                "method": req.method,
                "route": route,
                "status": status,
                "duration_ms": round(seconds * 1000, 2),
            },
        )
        if self._record is not None:
            self._record(route, req.method, status, seconds)
        if operation_token is not None:
            trace.operation_id.reset(operation_token)
        if request_token is not None:
            trace.request_id.reset(request_token)


def _trace_of(req: Any) -> tuple[float | None, Token[str | None] | None, Token[str | None] | None]:
    found = getattr(req.context, "trace", None)
    return found if found is not None else (None, None, None)


class AsyncTelemetry:
    """The same middleware for the ASGI app of the waiting routes (handlers.asgi)."""

    def __init__(self, record: Recorder | None = None) -> None:
        self._sync = Telemetry(record)

    async def process_request(self, req: Any, resp: Any) -> None:
        self._sync.process_request(req, resp)

    async def process_response(
        self, req: Any, resp: Any, resource: Any, req_succeeded: bool
    ) -> None:
        self._sync.process_response(req, resp, resource, req_succeeded)


class MetricsResource:
    """Prometheus metrics of the API, the workers and the fleet (operator key)."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    @responds(200, str, media_type="text/plain")
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        from infra.metrics import CONTENT_TYPE, exposition

        resp.content_type = CONTENT_TYPE
        resp.data = exposition(self._deps)
