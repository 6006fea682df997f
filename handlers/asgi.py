"""The HTTP API as gunicorn serves it (gunicorn.conf.py: the `asgi` worker class),
one ASGI app per process.

The routes that wait, GET /operations/:id/wait, GET /containers/:id/logs and the
event logs, GET /events and GET /api/v1/events (`?follow=1` streams), are coroutines
on the event loop (handlers.waits). Every other request goes to the WSGI app that
the Lambda entry serves (handlers.app), unchanged, on a pool of `web_threads`
threads (a2wsgi). A parked wait holds no thread, so /health and the rest still find
one however many waits are parked; how many one API key may park is capped
(infra.open_requests).

The Lambda entry never imports this module: its cold path stays the WSGI app's."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import falcon
import falcon.asgi
import redis.asyncio
from a2wsgi import WSGIMiddleware

from handlers import errors, routing
from handlers.app import ADMIN_BASE, PUBLIC_BASE, create_app, deps_from
from handlers.auth import Authenticator, AuthMiddleware
from handlers.events import OperatorEvents, TenantEvents
from handlers.telemetry import AsyncTelemetry
from handlers.waits import (
    CLIENT_GONE,
    ContainerLogs,
    EventFollows,
    Notifications,
    OperationWait,
    Pool,
)
from infra import logs
from infra.metrics import observe_request
from services.deps import Deps
from services.workloads import WorkloadService
from shared.settings import Settings

# The paths the coroutines serve (after the trailing slash is stripped, as falcon does).
WAITING_PATHS = re.compile(
    rf"^(?:{re.escape(PUBLIC_BASE)}/(?:operations/[^/]+/wait|containers/[^/]+/logs|events)"
    rf"|{re.escape(ADMIN_BASE)}/events)/?$"
)
Scope = dict[str, Any]
Receive = Any
Send = Any


class ThreadedAuth:
    """The WSGI app's AuthMiddleware, run on the pool: it reads Redis and the table."""

    def __init__(self, auth: AuthMiddleware, pool: Pool) -> None:
        self._auth = auth
        self._pool = pool

    async def process_resource(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, resource: Any, params: Any
    ) -> None:
        await self._pool.run(self._auth.process_resource, req, resp, resource, params)


def _on_loop(handler: Any) -> Any:
    async def handle(req: Any, resp: Any, ex: Exception, params: Any) -> None:
        handler(req, resp, ex, params)

    return handle


class Server:
    """The ASGI app: waiting routes to the coroutines, the rest to the WSGI app."""

    def __init__(self, deps: Deps) -> None:
        settings = deps.settings
        wsgi_app: Any = create_app(deps, metrics=True)  # a2wsgi's stubs want a plain function
        routing.load_all(wsgi_app)  # the Lambda entry builds routes on first use; not here
        self._wsgi = WSGIMiddleware(wsgi_app, workers=settings.web_threads)
        pool = Pool(self._wsgi.executor)
        # No socket timeout: the subscription reads for as long as the process lives;
        # BLPOP carries its own timeout.
        self._redis = redis.asyncio.Redis.from_url(settings.redis_url, socket_connect_timeout=3)
        self._notifications = Notifications(self._redis)

        middleware: list[Any] = [
            AsyncTelemetry(observe_request),
            ThreadedAuth(AuthMiddleware(Authenticator(deps)), pool),
        ]
        if settings.cors_origins:
            middleware.insert(0, falcon.CORSMiddleware(allow_origins=list(settings.cors_origins)))
        waits = falcon.asgi.App(middleware=middleware)
        waits.req_options.strip_url_path_trailing_slash = True
        for kind, handler in errors.HANDLERS:
            waits.add_error_handler(kind, _on_loop(handler))
        waits.add_route(
            f"{PUBLIC_BASE}/operations/{{operation_id}}/wait",
            OperationWait(deps, pool, self._notifications),
        )
        waits.add_route(
            f"{PUBLIC_BASE}/containers/{{container_id}}/logs",
            ContainerLogs(deps, WorkloadService(deps), pool, self._redis, self._notifications),
        )
        waits.add_route(
            f"{PUBLIC_BASE}/events",
            EventFollows(deps, pool, self._notifications, TenantEvents(deps)),
        )
        waits.add_route(
            f"{ADMIN_BASE}/events",
            EventFollows(deps, pool, self._notifications, OperatorEvents(deps)),
        )
        self._waits = waits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http" and WAITING_PATHS.match(scope["path"]):
            await self._watched(scope, receive, send)
        else:
            await self._wsgi(scope, receive, send)  # type: ignore[arg-type]

    async def _watched(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a waiting route, with an event in the scope set when the client hangs up."""
        # These routes take no body: read it to its end and drop it, so that what
        # receive() says next is the disconnect.
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            if not message.get("more_body", False):
                break
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        body_read = False

        async def replay() -> dict[str, Any]:
            nonlocal body_read
            if not body_read:
                body_read = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        watcher = asyncio.create_task(watch())
        try:
            await self._waits({**scope, CLIENT_GONE: gone}, replay, send)
        finally:
            watcher.cancel()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._notifications.close()
                await self._redis.aclose()  # type: ignore[attr-defined]  # types-redis predates it
                self._wsgi.executor.shutdown(wait=False)
                await send({"type": "lifespan.shutdown.complete"})
                return


def get_app() -> Server:
    """Production entry (gunicorn.conf.py): settings read once from the environment."""
    logs.configure()
    return Server(deps_from(Settings.from_env()))
