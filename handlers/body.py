"""Reading and validating request bodies and query parameters."""

from __future__ import annotations

from typing import TypeVar

import falcon
from pydantic import BaseModel

from handlers.declare import Query
from shared.clock import looks_like_id
from shared.errors import InvalidInput, NotFound, PayloadTooLarge
from shared.requests import parse

M = TypeVar("M", bound=BaseModel)


def read_body(req: falcon.Request, max_bytes: int) -> bytes:
    """The raw JSON body, read once; `shared.requests.parse` decodes and validates
    it in one pass."""
    length = req.content_length
    if length is not None and length > max_bytes:
        raise PayloadTooLarge(f"Request body is larger than {max_bytes} bytes.")
    if not length:
        raise InvalidInput("Request body is required.")
    content_type = (req.content_type or "").split(";")[0].strip().lower()
    if content_type and content_type != "application/json" and not content_type.endswith("+json"):
        raise InvalidInput("Request body must be JSON (Content-Type: application/json).")
    raw: bytes = req.bounded_stream.read()
    return raw


def body_as(req: falcon.Request, model: type[M], max_bytes: int) -> M:
    return parse(model, read_body(req, max_bytes))


def path_id(value: str, what: str = "Resource") -> str:
    """Ids in paths are checked for shape before they reach the table."""
    if not looks_like_id(value):
        raise NotFound(f"{what} not found.")
    return value


def float_param(
    req: falcon.Request, name: str, default: float, *, low: float, high: float
) -> float:
    raw = req.get_param(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise InvalidInput(f"Query parameter {name} must be a number.") from exc
    if not low <= value <= high:  # also rejects NaN
        raise InvalidInput(f"Query parameter {name} must be between {low} and {high}.")
    return value


LIMIT_QUERY = Query(
    "limit",
    {"type": "integer", "minimum": 1, "maximum": 100},
    "How many records to return, newest first (20 when left out).",
)
