"""A tenant's own keys: GET /keys/current (what the presented key is and may do) and
POST /keys (a new key of the same cluster, never broader than the one that asks)."""

from __future__ import annotations

import falcon

from handlers import shapes, views
from handlers.auth import TENANT
from handlers.body import body_as
from handlers.declare import responds
from services.deps import Deps
from services.keys import mint_key, scope_for
from shared.admin_requests import KeyCreate
from shared.errors import Conflict, Forbidden, KeyLimitReached

# What creating a key answers, on the tenant's route and the operator's.
responds_with_new_key = responds(
    201,
    shapes.ApiKeyView,
    body=KeyCreate,
    body_optional=True,
    errors=(KeyLimitReached, Conflict, Forbidden),
)


def create_key(req: falcon.Request, resp: falcon.Response, deps: Deps, cluster_id: str) -> None:
    """Mint a key of `cluster_id` for the body (which may be left out) within the scope
    of the key that asks: the operator's route and the tenant's share it."""
    body = body_as(req, KeyCreate, deps.settings.max_body_bytes) if req.content_length else None
    body = body or KeyCreate()
    now = deps.clock()
    scope = scope_for(body, req.context.principal.scope, now)
    key, secret = mint_key(deps.repo, cluster_id, body.name, now, deps.new_id, scope)
    resp.status = falcon.HTTP_201
    resp.media = views.api_key(key, secret)


class KeyCollection:
    auth = TENANT

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    @responds_with_new_key
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        """A new key of this cluster (shown once), narrowed to `verbs`, `container_ids`,
        `egg_ids` and `expires_at` where given and otherwise as narrow as the key that
        asks: a key never mints a key broader than itself (403 `forbidden`)."""
        create_key(req, resp, self._deps, req.context.principal.cluster_id)


class CurrentKey:
    auth = TENANT

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    @responds(200, shapes.ApiKeyView)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """The key this request presents: its name, prefix, scope and expiry."""
        principal = req.context.principal
        resp.media = views.api_key(self._deps.repo.keys.get(principal.cluster_id, principal.key_id))
