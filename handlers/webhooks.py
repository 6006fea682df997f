"""Webhook endpoints: POST/GET .../webhooks, GET/DELETE .../webhooks/:id and
GET .../webhooks/:id/deliveries, for tenants (their cluster's events, under
/api/public/clusters/v1) and operators (every log's, under /api/v1)."""

from __future__ import annotations

import falcon

from handlers import shapes, views
from handlers.auth import OPERATOR, TENANT
from handlers.body import LIMIT_QUERY, body_as, path_id
from handlers.declare import responds
from handlers.pages import limit_of
from services.deps import Deps
from services.webhooks import WebhookService
from shared.errors import Conflict
from shared.webhook_requests import WebhookCreate


def _scope(req: falcon.Request) -> str | None:
    """Whose endpoints: the tenant's cluster, or the operators' (None)."""
    cluster_id: str | None = req.context.principal.cluster_id
    return cluster_id


class WebhookCollection:
    def __init__(self, deps: Deps, service: WebhookService, *, tenant: bool) -> None:
        self.auth = TENANT if tenant else OPERATOR
        self._deps = deps
        self._service = service

    @responds(201, shapes.WebhookCreatedView, body=WebhookCreate, errors=(Conflict,))
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = body_as(req, WebhookCreate, self._deps.settings.max_body_bytes)
        webhook, secret = self._service.create(_scope(req), body)
        resp.status = falcon.HTTP_201
        resp.media = views.webhook(webhook) | {"secret": secret}

    @responds(200, list[shapes.WebhookView])
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = [views.webhook(w) for w in self._deps.repo.webhooks.list(_scope(req))]


class WebhookItem:
    def __init__(self, deps: Deps, *, tenant: bool) -> None:
        self.auth = TENANT if tenant else OPERATOR
        self._store = deps.repo.webhooks

    @responds(200, shapes.WebhookView)
    def on_get(self, req: falcon.Request, resp: falcon.Response, webhook_id: str) -> None:
        resp.media = views.webhook(self._store.get(_scope(req), path_id(webhook_id, "Webhook")))

    @responds(204, None)
    def on_delete(self, req: falcon.Request, resp: falcon.Response, webhook_id: str) -> None:
        self._store.delete(self._store.get(_scope(req), path_id(webhook_id, "Webhook")))
        resp.status = falcon.HTTP_204


class WebhookDeliveries:
    """GET .../webhooks/:id/deliveries?limit=N: the newest delivery attempts first."""

    def __init__(self, deps: Deps, *, tenant: bool) -> None:
        self.auth = TENANT if tenant else OPERATOR
        self._store = deps.repo.webhooks

    @responds(200, list[shapes.DeliveryAttemptView], query=(LIMIT_QUERY,))
    def on_get(self, req: falcon.Request, resp: falcon.Response, webhook_id: str) -> None:
        webhook = self._store.get(_scope(req), path_id(webhook_id, "Webhook"))
        attempts = self._store.attempts(webhook.id, limit_of(req, 20, 100))
        resp.media = [views.delivery_attempt(a) for a in attempts]
