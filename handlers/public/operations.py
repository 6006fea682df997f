"""Following an operation: read it, or long-poll until it finishes.

The long-poll here serves the WSGI app (the Lambda entry, the tests); gunicorn
serves the same route with coroutines (handlers.waits). Both count the wait against
the key's open requests (infra.open_requests) once it parks."""

from __future__ import annotations

import time

import falcon

from handlers import shapes, views
from handlers.auth import TENANT
from handlers.body import LIMIT_QUERY, float_param, path_id
from handlers.declare import Query, responds
from handlers.pages import CURSOR_QUERY, by_time, paged
from handlers.revocation import Watch
from infra.open_requests import OpenRequests
from infra.queue import operation_channel
from services.deps import Deps
from shared.errors import Forbidden, TooManyRequests, Unauthorized
from shared.models import Operation
from shared.settings import Settings

# A wait re-reads the table this often even when subscribed, in case a notification
# was missed; without a subscription, more often.
SUBSCRIBED_POLL_SECONDS = 5.0
UNSUBSCRIBED_POLL_SECONDS = 1.0
WAIT_TIMEOUT = Query(
    "timeout",
    {"type": "number", "minimum": 0, "maximum": 3600},
    "Seconds to wait at most (capped by the server's wait cap).",
)


class OperationCollection:
    """GET /operations?limit=N: the cluster's recent operations, newest first."""

    auth = TENANT

    def __init__(self, deps: Deps) -> None:
        self._repo = deps.repo
        self._settings = deps.settings

    @responds(200, list[shapes.OperationView], query=(LIMIT_QUERY, CURSOR_QUERY))
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        principal = req.context.principal
        kept = self._repo.operations.in_cluster(principal.cluster_id)
        seen = [o for o in kept if principal.scope.allows_container(o.workload_id)]
        recent = paged(
            req, resp, self._settings, seen, by_time, newest_first=True, default_limit=20, high=100
        )
        resp.media = [views.operation(o) for o in recent]


class OperationItem:
    auth = TENANT

    def __init__(self, deps: Deps) -> None:
        self._repo = deps.repo

    @responds(200, shapes.OperationView)
    def on_get(self, req: falcon.Request, resp: falcon.Response, operation_id: str) -> None:
        principal = req.context.principal
        op = self._repo.operations.get(principal.cluster_id, path_id(operation_id, "Operation"))
        if not principal.scope.allows_container(op.workload_id):
            raise Forbidden("This key is not allowed this operation's container.")
        resp.media = views.operation(op)


class OperationWait:
    """GET /operations/:id/wait?timeout=S answers when the operation finishes or
    the timeout (capped) passes, whichever comes first."""

    auth = TENANT

    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._open = OpenRequests(deps.redis, deps.settings.max_open_per_key)

    @responds(200, shapes.OperationView, query=(WAIT_TIMEOUT,), errors=(TooManyRequests,))
    def on_get(self, req: falcon.Request, resp: falcon.Response, operation_id: str) -> None:
        seconds = wait_seconds(req, self._deps.settings)
        deadline = time.monotonic() + seconds
        principal = req.context.principal
        path_id(operation_id, "Operation")
        op = self._deps.repo.operations.get(principal.cluster_id, operation_id)
        if not op.status.is_finished and seconds > 0:
            parked = self._open.begin(principal.key_id, seconds)
            try:
                op = self._wait(principal.key_id, principal.cluster_id, operation_id, deadline)
            finally:
                self._open.end(parked)
        resp.media = views.operation(op)

    def _wait(self, key_id: str, cluster_id: str, operation_id: str, deadline: float) -> Operation:
        """Until the operation finishes (its channel wakes the wait) or the deadline; a
        revocation of the key ends it at once with 401."""
        repo = self._deps.repo
        with Watch(self._deps.redis, key_id, operation_channel(operation_id)) as watch:
            # Read again once subscribed: it may have finished before the subscription.
            op = repo.operations.get(cluster_id, operation_id)
            while not op.status.is_finished:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                every = SUBSCRIBED_POLL_SECONDS if watch.subscribed else UNSUBSCRIBED_POLL_SECONDS
                watch.pause(min(left, every))
                if watch.revoked:
                    raise Unauthorized("The API key was revoked.")
                op = repo.operations.get(cluster_id, operation_id)
            return op


def wait_seconds(req: falcon.Request, settings: Settings) -> float:
    """How long a wait may last: `?timeout=S` (default and cap: the wait cap)."""
    cap = settings.wait_cap_seconds
    return min(float_param(req, "timeout", cap, low=0, high=3600), cap)
