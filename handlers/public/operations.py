"""Following an operation: read it, or long-poll until it finishes."""

from __future__ import annotations

import contextlib
import time

import falcon
from redis.exceptions import RedisError

from handlers import views
from handlers.auth import TENANT
from handlers.body import float_param, path_id
from infra.queue import operation_channel
from services.deps import Deps
from shared.models import Operation


class OperationItem:
    auth = TENANT

    def __init__(self, deps: Deps) -> None:
        self._repo = deps.repo

    def on_get(self, req: falcon.Request, resp: falcon.Response, operation_id: str) -> None:
        op = self._repo.operations.get(
            req.context.principal.cluster_id, path_id(operation_id, "Operation")
        )
        resp.media = views.operation(op)


class OperationWait:
    """GET /operations/:id/wait?timeout=S answers when the operation finishes or
    the timeout (capped) passes, whichever comes first."""

    auth = TENANT
    # Re-read the table this often even when subscribed, in case a notification was
    # missed; without Redis, poll faster.
    SUBSCRIBED_POLL_SECONDS = 5.0
    UNSUBSCRIBED_POLL_SECONDS = 1.0

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    def on_get(self, req: falcon.Request, resp: falcon.Response, operation_id: str) -> None:
        cap = self._deps.settings.wait_cap_seconds
        timeout = float_param(req, "timeout", cap, low=0, high=3600)
        deadline = time.monotonic() + min(timeout, cap)
        cluster_id = req.context.principal.cluster_id
        path_id(operation_id, "Operation")
        resp.media = views.operation(self._wait(cluster_id, operation_id, deadline))

    def _wait(self, cluster_id: str, operation_id: str, deadline: float) -> Operation:
        repo = self._deps.repo
        pubsub = None
        try:
            pubsub = self._deps.redis.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(operation_channel(operation_id))
        except RedisError:
            pubsub = None
        try:
            op = repo.operations.get(cluster_id, operation_id)
            while not op.status.is_finished:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                every = self.SUBSCRIBED_POLL_SECONDS if pubsub else self.UNSUBSCRIBED_POLL_SECONDS
                pause = min(left, every)
                if pubsub is not None:
                    try:
                        pubsub.get_message(timeout=pause)
                    except RedisError:
                        pubsub = None
                        time.sleep(pause)
                else:
                    time.sleep(pause)
                op = repo.operations.get(cluster_id, operation_id)
            return op
        finally:
            if pubsub is not None:
                with contextlib.suppress(RedisError):
                    pubsub.close()
