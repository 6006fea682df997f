"""Time and identifiers, injected everywhere so tests can pin them."""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]
IdFactory = Callable[[], str]

_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


def new_operation_id() -> str:
    return f"op-{uuid.uuid4().hex}"


def new_secret(prefix: str) -> str:
    """A bearer secret: a recognisable prefix and 256 random bits."""
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def looks_like_id(value: str) -> bool:
    """Cheap shape check for ids that arrive in URLs, before they reach the table."""
    return bool(_ID_PATTERN.match(value))


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else stamp(moment)


def stamp(moment: datetime) -> str:
    """ISO 8601 in UTC with a Z, as every timestamp leaves the API."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def sortable(moment: datetime) -> str:
    """Fixed-width UTC text, so that string order is time order (for sort keys)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
