"""Registering webhook endpoints (a tenant's for its cluster, an operator's for every
log). The secret is made here, shown once, and kept sealed with CORRAL_SECRET_KEY;
deliveries are the workers' (workers.webhooks)."""

from __future__ import annotations

from services.deps import Deps
from shared.clock import new_secret
from shared.errors import Conflict, ServiceUnavailable
from shared.events import parse_types
from shared.sealing import seal
from shared.webhook_requests import WebhookCreate
from shared.webhooks import MAX_WEBHOOKS, Webhook, WebhookStatus, check_url


class WebhookService:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._store = deps.repo.webhooks

    def create(self, cluster_id: str | None, body: WebhookCreate) -> tuple[Webhook, str]:
        """The endpoint and its secret (the only time the secret is shown)."""
        settings = self._deps.settings
        url = check_url(body.url, allow_private=settings.webhook_allow_private)
        types = tuple(sorted(parse_types(body.types)))
        if len(self._store.list(cluster_id)) >= MAX_WEBHOOKS:
            raise Conflict(f"At most {MAX_WEBHOOKS} webhooks; delete one first.")
        if settings.secret_key is None:
            raise ServiceUnavailable(
                "This Corral has no CORRAL_SECRET_KEY, so it cannot keep webhook secrets; "
                "the operator must set one."
            )
        secret = new_secret("whsec")
        webhook = Webhook(
            id=self._deps.new_id(),
            cluster_id=cluster_id,
            url=url,
            types=types,
            sealed_secret=seal(settings.secret_key, secret),
            status=WebhookStatus.ACTIVE,
            created_at=self._deps.clock(),
        )
        self._store.create(webhook)
        self._deps.jobs.webhooks_exist()
        return webhook, secret
