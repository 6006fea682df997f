"""Delivering events to webhook endpoints, from the workers (never the API process).

`deliver_log(log)` is enqueued when a commit appends to a log that endpoints may
watch (infra.queue.JobQueue.announce_events); `deliver_all` runs on a schedule and
catches up every endpoint: retries that came due, and anything a lost trigger missed.
Each endpoint receives the events in log order from where it stands (its cursor):
a failure stops it there until its next attempt is due (exponential backoff), so
nothing is skipped; after DISABLE_AFTER of failures in a row it is disabled, with the
reason. Delivery is at least once (a receiver deduplicates by the event id)."""

from __future__ import annotations

import json
import logging
import socket
import time
import urllib.error
import urllib.request
from dataclasses import replace
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from infra.table.webhooks import due
from shared.events import PLATFORM_LOG, Event, EventFilter
from shared.sealing import unseal
from shared.webhooks import (
    DELIVERY_ID_HEADER,
    DISABLE_AFTER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    DeliveryAttempt,
    Webhook,
    next_retry,
    refused_address,
    signature,
)
from workers import context

log = logging.getLogger("corral.webhooks")
TIMEOUT_SECONDS = 10
BATCH = 100


def deliver_log(log_name: str) -> int:
    """Deliver `log_name`'s new events to the endpoints that watch it: its cluster's
    and the operators'. Returns how many deliveries succeeded."""
    ctx = context.current()
    store = ctx.repo.webhooks
    watching = store.list(None)
    if log_name != PLATFORM_LOG:
        watching = store.list(log_name) + watching
    return sum(_deliver(w, log_name) for w in watching)


def deliver_all() -> int:
    """Every endpoint, every log it watches (the schedule's catch-up)."""
    ctx = context.current()
    store = ctx.repo.webhooks
    delivered = 0
    cluster_ids = [c.id for c in ctx.repo.clusters.list()]
    for cluster_id in cluster_ids:
        for webhook in store.list(cluster_id):
            ctx.jobs.webhooks_exist()  # in case Redis lost it
            delivered += _deliver(webhook, cluster_id)
    for webhook in store.list(None):
        for log_name in (PLATFORM_LOG, *cluster_ids):
            delivered += _deliver(store.get(None, webhook.id), log_name)
    return delivered


def _deliver(webhook: Webhook, log_name: str) -> int:
    """Send `webhook` the events of `log_name` after its cursor, in order, until one
    fails or none is left; store where it got to."""
    ctx = context.current()
    now = ctx.clock()
    if not due(webhook, now):
        return 0
    wanted = EventFilter(types=frozenset(webhook.types))
    cursor = webhook.cursors.get(log_name, 0)
    delivered = 0
    failure: DeliveryAttempt | None = None
    while failure is None:
        batch = list(ctx.repo.db.events.after(log_name, cursor, BATCH))
        for event in batch:
            if event.time >= webhook.created_at and wanted.admits(event):
                attempt = _post(webhook, event, ctx.clock())
                ctx.repo.webhooks.record_attempt(attempt)
                if not attempt.delivered:
                    failure = attempt
                    break
                delivered += 1
            cursor = event.sequence
        if len(batch) < BATCH:
            break
    cursors = {**webhook.cursors, log_name: cursor}
    if failure is None:
        if cursors != webhook.cursors or webhook.failures:
            progress = replace(webhook, cursors=cursors, failures=0, failing_since=None)
            ctx.repo.webhooks.record_progress(progress)
        return delivered
    _failed(webhook, cursors, failure)
    return delivered


def _failed(webhook: Webhook, cursors: dict[str, int], failure: DeliveryAttempt) -> None:
    ctx = context.current()
    since = webhook.failing_since or failure.at
    if failure.at - since >= DISABLE_AFTER:
        answer = f"HTTP {failure.status_code}" if failure.status_code else failure.error
        reason = (
            f"Deliveries failed for 24 hours (since {since:%Y-%m-%d %H:%M} UTC); last: {answer}."
        )
        ctx.repo.webhooks.disable(replace(webhook, cursors=cursors), reason)
        return
    failures = webhook.failures + 1
    ctx.repo.webhooks.record_progress(
        replace(
            webhook,
            cursors=cursors,
            failures=failures,
            failing_since=since,
            next_attempt_at=failure.at + next_retry(failures),
        )
    )


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not a new destination (it could point anywhere)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def delivery_id(webhook: Webhook, event: Event) -> str:
    """The same on every attempt to send `event` to `webhook`, and on no other delivery:
    what a receiver drops duplicates by (deliveries are at least once). The event's own
    id is its sequence in its cluster's log, so one endpoint watching several logs (an
    operator's) can see the same id from two clusters."""
    return f"{webhook.id}.{event.log}.{event.sequence}"


def _post(webhook: Webhook, event: Event, now: datetime) -> DeliveryAttempt:
    ctx = context.current()
    body = json.dumps(event.to_api(), separators=(",", ":")).encode()
    timestamp = int(time.time())
    secret_key = ctx.settings.secret_key or ""

    def attempt(status_code: int | None, error: str | None = None) -> DeliveryAttempt:
        delivered = status_code is not None and 200 <= status_code < 300
        return DeliveryAttempt(
            webhook.id, event.cursor, event.type, now, status_code, delivered, error
        )

    if not ctx.settings.webhook_allow_private:
        refused = _refused_destination(webhook.url)
        if refused is not None:
            return attempt(None, refused)
    request = urllib.request.Request(
        webhook.url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "Corral-Webhooks/1",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: signature(unseal(secret_key, webhook.sealed_secret), timestamp, body),
            "Corral-Event-Id": event.cursor,
            "Corral-Event-Type": event.type,
            DELIVERY_ID_HEADER: delivery_id(webhook, event),
        },
    )
    try:
        with _opener.open(request, timeout=TIMEOUT_SECONDS) as answer:
            return attempt(int(answer.status))
    except urllib.error.HTTPError as exc:
        return attempt(exc.code, f"HTTP {exc.code}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return attempt(None, f"no answer: {type(exc).__name__}")


def _refused_destination(url: str) -> str | None:
    """Checked again at delivery: a name may resolve elsewhere than when registered."""
    host = urlsplit(url).hostname or ""
    try:
        found = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return "no answer: the host does not resolve"
    for *_, sockaddr in found:
        reason = refused_address(str(sockaddr[0]))
        if reason is not None:
            return f"refused: the host resolves to {reason}"
    return None
