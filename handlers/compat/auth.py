"""004's token exchange: GET /api/auth/status, POST /api/auth/login {"api_key"} ->
{"token"}, GET /api/auth/validate. The token then stands in for the key on every route
(handlers/auth.py)."""

from __future__ import annotations

from typing import Any

import falcon

from handlers.auth import ANY_KEY, PUBLIC, Authenticator, Principal, credential_of
from handlers.body import body_as
from services.deps import Deps
from shared.compat_requests import LoginRequest
from shared.tokens import TokenClaims, looks_like_token


def _scope(principal: Principal) -> str:
    return "operator" if principal.is_operator else "tenant"


def _expiry(claims: TokenClaims) -> dict[str, Any]:
    return {"expires_at": claims.expires_at, "expires_in": claims.expires_at - claims.issued_at}


class AuthStatus:
    """GET /api/auth/status: whether authentication is on (always) and how to log in."""

    auth = PUBLIC

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {
            "auth_enabled": True,
            "token_login": self._deps.settings.token_secret is not None,
            "methods": ["api_key", "token"] if self._deps.settings.token_secret else ["api_key"],
        }


class AuthLogin:
    """POST /api/auth/login {"api_key": "..."}: a short-lived token for the key."""

    auth = PUBLIC

    def __init__(self, deps: Deps, authenticator: Authenticator) -> None:
        self._deps = deps
        self._auth = authenticator

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = body_as(req, LoginRequest, self._deps.settings.max_body_bytes)
        token, principal, claims = self._auth.login(body.api_key)
        resp.set_header("Cache-Control", "no-store")
        resp.media = {
            "token": token,
            "token_type": "Bearer",
            "scope": _scope(principal),
            "key_id": principal.key_id,
            "cluster_id": principal.cluster_id,
            **_expiry(claims),
        }


class AuthValidate:
    """GET /api/auth/validate: 200 with what the bearer (token or key) stands for, 401
    when it is not valid (expired, revoked, forged)."""

    auth = ANY_KEY

    def __init__(self, authenticator: Authenticator) -> None:
        self._auth = authenticator

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        principal: Principal = req.context.principal
        credential = credential_of(req.get_header("Authorization"), req.get_header("X-API-Key"))
        token = looks_like_token(credential)
        resp.media = {
            "valid": True,
            "kind": "token" if token else "api_key",
            "scope": _scope(principal),
            "key_id": principal.key_id,
            "cluster_id": principal.cluster_id,
            **(_expiry(self._auth.claims(credential)) if token else {}),
        }
