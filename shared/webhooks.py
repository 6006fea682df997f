"""Webhooks: endpoints that receive the event log's events as signed POSTs.

A tenant's endpoint receives its cluster's events, an operator's every log's. Each
delivery carries `Corral-Timestamp` (unix seconds) and `Corral-Signature`
(`v1=` + hex HMAC-SHA256 of `<timestamp>.<body>` keyed by the endpoint's secret), so
the receiver can check who sent it and refuse replays. A failed delivery is retried
with exponential backoff (events of one endpoint go out in order: a failing one holds
back the ones after it); an endpoint failing for DISABLE_AFTER is disabled and says
why."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from urllib.parse import urlsplit

from shared.errors import InvalidInput

SIGNATURE_HEADER = "Corral-Signature"
TIMESTAMP_HEADER = "Corral-Timestamp"
DELIVERY_ID_HEADER = "Corral-Delivery-Id"  # the same on every attempt of one delivery
DISABLE_AFTER = timedelta(hours=24)
FIRST_RETRY = timedelta(seconds=10)
LONGEST_RETRY = timedelta(hours=1)
METADATA_ADDRESS = ipaddress.ip_address("169.254.169.254")
MAX_WEBHOOKS = 10  # per cluster, and for the operators


class WebhookStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


@dataclass(frozen=True)
class Webhook:
    id: str
    cluster_id: str | None  # None: an operator's (every log)
    url: str
    types: tuple[str, ...]  # () : every event
    sealed_secret: str
    status: WebhookStatus
    created_at: datetime
    disabled_reason: str | None = None
    # Delivery state: where it stands in each log, and its current failing streak.
    cursors: dict[str, int] = field(default_factory=dict)
    failing_since: datetime | None = None
    failures: int = 0
    next_attempt_at: datetime | None = None


@dataclass(frozen=True)
class DeliveryAttempt:
    webhook_id: str
    event_id: str
    event_type: str
    at: datetime
    status_code: int | None  # None: no answer
    delivered: bool
    error: str | None = None


def next_retry(failures: int) -> timedelta:
    """The pause after the `failures`-th failure in a row: 10 s, 20 s, 40 s ... 1 h."""
    pause: timedelta = FIRST_RETRY * 2 ** min(max(failures - 1, 0), 20)
    return min(pause, LONGEST_RETRY)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + digest.hexdigest()


def refused_address(address: str) -> str | None:
    """Why an endpoint may not be at `address` (an IP), or None."""
    ip = ipaddress.ip_address(address)
    if ip == METADATA_ADDRESS:
        return "the cloud metadata address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_unspecified or ip.is_multicast:
        return "an address no endpoint has"
    return None


def check_url(url: str, *, allow_private: bool) -> str:
    """`url` if Corral may deliver to it: http(s), a host that resolves, and (unless
    the operator allows it) no address on loopback, link-local or the metadata one."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("url must be an http:// or https:// URL with a host.")
    if parts.username or parts.password:
        raise InvalidInput("url must not carry credentials; sign with the secret instead.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        found = socket.getaddrinfo(parts.hostname, port, proto=socket.IPPROTO_TCP)
    except (OSError, ValueError, UnicodeError) as exc:
        raise InvalidInput(f"url's host {parts.hostname!r} does not resolve.") from exc
    if not allow_private:
        for *_, sockaddr in found:
            reason = refused_address(str(sockaddr[0]))
            if reason is not None:
                raise InvalidInput(
                    f"url's host {parts.hostname!r} resolves to {reason} ({sockaddr[0]}); "
                    "webhooks are delivered only to public addresses."
                )
    return url
