"""Webhook endpoints (`WEBHOOKS#<cluster id>` or `WEBHOOKS#operator` / `WEBHOOK#<id>`)
and their delivery attempts (`WEBHOOK#<id>` / `ATTEMPT#<time>#<event>`, dropped by
the table after RETENTION_SECONDS)."""

from __future__ import annotations

import builtins
from datetime import datetime

from infra.table.attributes import Item, moment
from infra.table.dynamo import Dynamo
from infra.table.expression import Expression
from shared.changes import record_change
from shared.clock import iso, new_id, parse_iso, stamp
from shared.errors import NotFound
from shared.webhooks import DeliveryAttempt, Webhook, WebhookStatus

OPERATOR_SCOPE = "operator"
ATTEMPT_PREFIX = "ATTEMPT#"
ATTEMPTS_KEPT_SECONDS = 7 * 24 * 3600


def scope_pk(cluster_id: str | None) -> str:
    return f"WEBHOOKS#{cluster_id or OPERATOR_SCOPE}"


def webhook_sk(webhook_id: str) -> str:
    return f"WEBHOOK#{webhook_id}"


def webhook_item(w: Webhook) -> Item:
    return {
        "pk": scope_pk(w.cluster_id),
        "sk": webhook_sk(w.id),
        "id": w.id,
        "cluster_id": w.cluster_id,
        "url": w.url,
        "types": list(w.types),
        "sealed_secret": w.sealed_secret,
        "status": w.status.value,
        "created_at": stamp(w.created_at),
        "cursors": w.cursors,
        "failures": w.failures,
    }


def webhook_from(item: Item) -> Webhook:
    return Webhook(
        id=item["id"],
        cluster_id=item.get("cluster_id"),
        url=item["url"],
        types=tuple(item.get("types") or ()),
        sealed_secret=item["sealed_secret"],
        status=WebhookStatus(item["status"]),
        created_at=moment(item["created_at"]),
        disabled_reason=item.get("disabled_reason"),
        cursors={k: int(v) for k, v in (item.get("cursors") or {}).items()},
        failing_since=parse_iso(item.get("failing_since")),
        failures=int(item.get("failures", 0)),
        next_attempt_at=parse_iso(item.get("next_attempt_at")),
    )


class WebhookStore:
    def __init__(self, db: Dynamo) -> None:
        self.db = db

    def create(self, w: Webhook) -> None:
        after = {"url": w.url, "types": list(w.types)}
        change = record_change("webhook", "created", w.id, w.cluster_id, after)
        self.db.put_new(webhook_item(w), NotFound("Webhook id taken; retry."), [change])

    def get(self, cluster_id: str | None, webhook_id: str) -> Webhook:
        item = self.db.get(scope_pk(cluster_id), webhook_sk(webhook_id))
        if item is None:
            raise NotFound("Webhook not found.")
        return webhook_from(item)

    def list(self, cluster_id: str | None) -> list[Webhook]:
        items = self.db.query(scope_pk(cluster_id), sk_prefix="WEBHOOK#", consistent=True)
        return sorted((webhook_from(i) for i in items), key=lambda w: w.created_at)

    def delete(self, w: Webhook) -> None:
        change = record_change("webhook", "deleted", w.id, w.cluster_id)
        self.db.delete(
            scope_pk(w.cluster_id),
            webhook_sk(w.id),
            Expression().when_exists(),
            on_fail=lambda _: NotFound("Webhook not found."),
            events=[change],
        )

    def record_progress(self, w: Webhook) -> None:
        """Store where the endpoint stands and its failing streak (as `w` says)."""
        write = Expression().set("cursors", w.cursors).set("failures", w.failures)
        if w.failing_since is None:
            write.remove("failing_since", "next_attempt_at")
        else:
            write.set("failing_since", stamp(w.failing_since))
            write.set("next_attempt_at", iso(w.next_attempt_at))
        self.db.update(scope_pk(w.cluster_id), webhook_sk(w.id), write.when_exists())

    def disable(self, w: Webhook, reason: str) -> None:
        write = Expression().set("status", WebhookStatus.DISABLED.value)
        write.set("disabled_reason", reason).set("cursors", w.cursors).when_exists()
        after = {"status": WebhookStatus.DISABLED.value, "reason": reason}
        change = record_change("webhook", "disabled", w.id, w.cluster_id, after)
        self.db.update(scope_pk(w.cluster_id), webhook_sk(w.id), write, events=[change])

    # -- delivery attempts ---------------------------------------------------------

    def record_attempt(self, attempt: DeliveryAttempt) -> None:
        self.db.put_new(
            {
                "pk": webhook_sk(attempt.webhook_id),
                "sk": f"{ATTEMPT_PREFIX}{stamp(attempt.at)}#{new_id()[:8]}",
                "event_id": attempt.event_id,
                "event_type": attempt.event_type,
                "at": stamp(attempt.at),
                "status_code": attempt.status_code,
                "delivered": attempt.delivered,
                "error": attempt.error,
                "ttl": int(attempt.at.timestamp()) + ATTEMPTS_KEPT_SECONDS,
            },
            NotFound("Attempt recorded twice."),
        )

    def attempts(self, webhook_id: str, limit: int) -> builtins.list[DeliveryAttempt]:
        """The newest `limit` attempts, newest first."""
        items = list(self.db.query(webhook_sk(webhook_id), sk_prefix=ATTEMPT_PREFIX))
        items.sort(key=lambda i: i["sk"], reverse=True)
        return [
            DeliveryAttempt(
                webhook_id=webhook_id,
                event_id=i["event_id"],
                event_type=i["event_type"],
                at=moment(i["at"]),
                status_code=i.get("status_code"),
                delivered=bool(i["delivered"]),
                error=i.get("error"),
            )
            for i in items[:limit]
        ]


def due(w: Webhook, now: datetime) -> bool:
    return w.status == WebhookStatus.ACTIVE and (
        w.next_attempt_at is None or w.next_attempt_at <= now
    )
