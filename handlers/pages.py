"""Pages of a listing: `?limit=N` and an opaque `?cursor=` (the `Next-Cursor` header of
the page before). A listing asked for without either answers in full, as the reference
documents say; with either, it answers one page, in a stable order, and a `Next-Cursor`
header while more remain. Walking the cursors returns each record exactly once.

A cursor is base64url JSON of where the page stopped (the table's LastEvaluatedKey, or
the sort key of the last record) and a MAC over it and the path it was made for: a
cursor edited, or taken to another listing, answers 400 `invalid_input`. The MAC key
is the platform's secret key (else its token secret, else the table name); a cursor
that names a table partition is also checked to name the listing's own."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

import falcon

from handlers.declare import Query
from shared.clock import stamp
from shared.errors import InvalidInput
from shared.settings import Settings


class Identified(Protocol):
    @property
    def id(self) -> str: ...


T = TypeVar("T", bound=Identified)


def by_id(record: Identified) -> str:
    return record.id


class Timed(Identified, Protocol):
    @property
    def created_at(self) -> datetime: ...


def by_time(record: Timed) -> str:
    """Newest-first listings' order: the creation time, then the id."""
    return f"{stamp(record.created_at)}#{record.id}"


NEXT_CURSOR_HEADER = "Next-Cursor"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_CURSOR_LENGTH = 2048
MAC_BYTES = 16

PAGE_QUERIES = (
    Query(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
        f"Records in one page (1 to {MAX_LIMIT}; {DEFAULT_LIMIT} when only `cursor` is "
        "given). Without `limit` and `cursor` the listing answers in full.",
    ),
    Query(
        "cursor",
        {"type": "string", "maxLength": MAX_CURSOR_LENGTH},
        f"Where the page starts: the `{NEXT_CURSOR_HEADER}` header of the page before "
        "(opaque; an altered cursor answers 400).",
    ),
)
CURSOR_QUERY = PAGE_QUERIES[1]
NAME_PREFIX_QUERY = Query(
    "name_prefix", {"type": "string", "maxLength": 64}, "Only records whose name begins so."
)


@dataclass(frozen=True)
class Page:
    """A page asked for: how many records, and where the one before stopped."""

    limit: int
    after: dict[str, Any] | None


def _mac_key(settings: Settings) -> bytes:
    secret = settings.secret_key or settings.token_secret or f"corral-cursor:{settings.table_name}"
    return secret.encode()


def _mac(settings: Settings, path: str, payload: str) -> bytes:
    message = f"{path}\n{payload}".encode()
    return hmac.new(_mac_key(settings), message, hashlib.sha256).digest()[:MAC_BYTES]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_cursor(settings: Settings, path: str, after: dict[str, Any]) -> str:
    payload = _b64(json.dumps(after, separators=(",", ":"), sort_keys=True).encode())
    return f"{payload}.{_b64(_mac(settings, path, payload))}"


def decode_cursor(settings: Settings, path: str, cursor: str) -> dict[str, Any]:
    bad = InvalidInput("Query parameter cursor is not a cursor of this listing.")
    payload, _, mac = cursor.partition(".")
    if len(cursor) > MAX_CURSOR_LENGTH or not payload or not mac:
        raise bad
    try:
        given = _unb64(mac)
        after = json.loads(_unb64(payload))
    except (binascii.Error, ValueError):
        raise bad from None
    if not hmac.compare_digest(given, _mac(settings, path, payload)):
        raise bad
    if not isinstance(after, dict) or not all(isinstance(v, str) for v in after.values()):
        raise bad
    return after


def page_of(
    req: falcon.Request,
    settings: Settings,
    default_limit: int | None = None,
    high: int = MAX_LIMIT,
) -> Page | None:
    """The page asked for; None for the whole listing (when neither `limit` nor
    `cursor` is given and the listing has no `default_limit`)."""
    raw_limit, cursor = req.get_param("limit"), req.get_param("cursor")
    if raw_limit is None and cursor is None and default_limit is None:
        return None
    limit = limit_of(req, default_limit or DEFAULT_LIMIT, high)
    after = decode_cursor(settings, req.path, cursor) if cursor is not None else None
    return Page(limit, after)


def limit_of(req: falcon.Request, default: int, high: int = MAX_LIMIT) -> int:
    """`?limit=N`, a whole number from 1 to `high` (`default` when left out); also for
    the event logs, whose cursor is their own (`after`)."""
    raw_limit = req.get_param("limit")
    if raw_limit is None:
        return default
    if not (raw_limit.isascii() and raw_limit.isdigit() and 1 <= int(raw_limit) <= high):
        raise InvalidInput(f"Query parameter limit must be a whole number from 1 to {high}.")
    return int(raw_limit)


def table_start(page: Page, partition: str) -> dict[str, Any] | None:
    """The table key a page starts after, checked to lie in the listing's partition."""
    if page.after is None:
        return None
    if page.after.get("pk") != partition or set(page.after) != {"pk", "sk"}:
        raise InvalidInput("Query parameter cursor is not a cursor of this listing.")
    return page.after


def set_next(
    req: falcon.Request, resp: falcon.Response, settings: Settings, after: dict[str, Any] | None
) -> None:
    if after is not None:
        resp.set_header(NEXT_CURSOR_HEADER, encode_cursor(settings, req.path, after))


def status_query(values: Iterable[str]) -> Query:
    return Query(
        "status", {"type": "string", "enum": sorted(values)}, "Only records in this status."
    )


def paged(
    req: falcon.Request,
    resp: falcon.Response,
    settings: Settings,
    records: Iterable[T],
    order: Callable[[T], str] = by_id,
    *,
    newest_first: bool = False,
    name_of: Callable[[T], str] | None = None,
    status_of: Callable[[T], str] | None = None,
    default_limit: int | None = None,
    high: int = MAX_LIMIT,
) -> list[T]:
    """A listing read whole, answered whole or a page of it in the order of `order`
    (a unique string per record: its id by default), filtered by `name_prefix` and
    `status` when the listing has `name_of` and `status_of`."""
    records = _filtered(req, records, name_of, status_of)
    page = page_of(req, settings, default_limit, high)
    if page is None:
        return list(records)
    ordered = sorted(records, key=order, reverse=newest_first)
    if page.after is not None:
        mark = page.after.get("after")
        if mark is None:
            raise InvalidInput("Query parameter cursor is not a cursor of this listing.")
        ordered = [r for r in ordered if (order(r) < mark if newest_first else order(r) > mark)]
    chosen = ordered[: page.limit]
    if len(ordered) > page.limit:
        set_next(req, resp, settings, {"after": order(chosen[-1])})
    return chosen


def _filtered(
    req: falcon.Request,
    records: Iterable[T],
    name_of: Callable[[T], str] | None,
    status_of: Callable[[T], str] | None,
) -> Iterable[T]:
    prefix = name_prefix_of(req) if name_of is not None else None
    status = req.get_param("status") if status_of is not None else None
    if prefix is not None and name_of is not None:
        records = [r for r in records if name_of(r).startswith(prefix)]
    if status is not None and status_of is not None:
        records = [r for r in records if status_of(r) == status]
    return records


def name_prefix_of(req: falcon.Request) -> str | None:
    prefix = req.get_param("name_prefix")
    if prefix is not None and len(prefix) > 64:
        raise InvalidInput("Query parameter name_prefix must be at most 64 characters.")
    return prefix
