"""The Lambda entry for the HTTP API: the same Falcon app gunicorn serves, behind
apig-wsgi, which turns API Gateway events (HTTP API v2 and REST API v1, base64
bodies, multi-value query strings and headers) into WSGI calls and back.

`handler` is what serverless.yml points at. It builds the app from the
environment on the first event and keeps it for the life of the container.
Tests build their own with `make_handler(create_app(deps))`.

Keep this module's imports light: they are the cold start. It must never pull
in host drivers (docker, paramiko) or rq's worker machinery; the queue imports
rq only when a request enqueues (see infra.queue)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from apig_wsgi import make_lambda_handler

from handlers.app import get_app

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


def make_handler(app: Callable[..., Any]) -> LambdaHandler:
    """A Lambda handler serving `app`, any WSGI app (here a falcon.App)."""
    # binary_support=None: on for HTTP API v2, off for REST v1 unless the REST API
    # declares binary media types; Corral answers JSON only, so it never matters.
    return make_lambda_handler(app, binary_support=None)


# One event at a time per Lambda execution environment, so no lock is needed.
_built: LambdaHandler | None = None


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Production entry: the app is built once per container, on the first event."""
    global _built
    if _built is None:
        _built = make_handler(get_app())
    return _built(event, context)
