"""One error envelope for everything that leaves the API."""

from __future__ import annotations

import logging
from typing import Any

import falcon

from shared.errors import (
    CorralError,
    InvalidInput,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServerError,
    Unauthorized,
)

log = logging.getLogger("corral.api")

# Falcon's own HTTP errors, expressed in our taxonomy.
_BY_STATUS: dict[int, type[CorralError]] = {
    400: InvalidInput,
    401: Unauthorized,
    404: NotFound,
    405: MethodNotAllowed,
    411: InvalidInput,
    413: PayloadTooLarge,
    415: InvalidInput,
}


def send(resp: falcon.Response, error: CorralError) -> None:
    resp.status = error.status
    resp.media = error.envelope()
    for name, value in error.headers().items():
        resp.set_header(name, value)


def corral_error(req: falcon.Request, resp: falcon.Response, ex: CorralError, params: Any) -> None:
    send(resp, ex)


def http_error(
    req: falcon.Request, resp: falcon.Response, ex: falcon.HTTPError, params: Any
) -> None:
    kind = _BY_STATUS.get(ex.status_code)
    if kind is None:
        error: CorralError = ServerError() if ex.status_code >= 500 else InvalidInput(ex.title)
    elif kind is NotFound:
        error = NotFound(
            "Route does not exist." if isinstance(ex, falcon.HTTPRouteNotFound) else None
        )
    elif kind is InvalidInput:
        error = InvalidInput(_describe(ex))
    else:
        error = kind()
    send(resp, error)
    allow = (ex.headers or {}).get("Allow") if isinstance(ex.headers, dict) else None
    if allow:
        resp.set_header("Allow", allow)


def unexpected(req: falcon.Request, resp: falcon.Response, ex: Exception, params: Any) -> None:
    if isinstance(ex, falcon.HTTPError):  # falcon's own 3xx/4xx raised from a responder
        http_error(req, resp, ex, params)
        return
    log.exception("unhandled error on %s %s", req.method, req.path)
    send(resp, ServerError())


def _describe(ex: falcon.HTTPError) -> str:
    if ex.status_code == 415:
        return "Request body must be JSON (Content-Type: application/json)."
    detail = ex.description or ex.title
    return str(detail)


# Registered in this order: the most specific handler wins.
HANDLERS: tuple[tuple[type[Exception], Any], ...] = (
    (Exception, unexpected),
    (falcon.HTTPError, http_error),
    (CorralError, corral_error),
)


def register(app: falcon.App[falcon.Request, falcon.Response]) -> None:
    for kind, handler in HANDLERS:
        app.add_error_handler(kind, handler)
