"""004's token exchange and CORS, replayed as its document writes them: login with an
API key for a token, use the token as the bearer, validate it; revoking the key refuses
its tokens at once."""

from __future__ import annotations

import dataclasses

import pytest
from falcon.testing import TestClient

from handlers.app import create_app
from services.deps import Deps
from shared.settings import Settings
from shared.tokens import sign, verify
from tests.fixtures.corral import Api, Tenant, error_of

DASHBOARD = "https://dashboard.example.com"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """004's agent configuration: `enable_cors: true`, `allowed_origins: [dashboard]`;
    and a token secret, as make run generates one."""
    return dataclasses.replace(
        settings, token_secret="test-token-secret", token_ttl_seconds=900, cors_origins=(DASHBOARD,)
    )


def login(api: Api, key: str) -> str:
    # TOKEN=$(curl -s -X POST .../api/auth/login -H "Content-Type: application/json"
    #   -d '{"api_key": "your-api-key"}' | jq -r '.token')
    resp = api.client.simulate_post(
        "/api/auth/login",
        headers={"Content-Type": "application/json"},
        body=f'{{"api_key": "{key}"}}',
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["cache-control"] == "no-store"
    token = resp.json["token"]
    assert isinstance(token, str) and token and key not in token
    return str(token)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_status_is_public_and_says_token_login_is_on(api: Api) -> None:
    resp = api.client.simulate_get("/api/auth/status")
    assert resp.status_code == 200
    assert resp.json["auth_enabled"] is True
    assert resp.json["token_login"] is True


def test_a_tenant_token_stands_in_for_its_key(tenant: Tenant) -> None:
    api = tenant.api
    assert api.tenant_key is not None
    token = login(api, api.tenant_key)

    cluster = api.client.simulate_get("/api/public/clusters/v1/cluster", headers=bearer(token))
    assert cluster.status_code == 200, cluster.text
    assert cluster.json["id"] == tenant.cluster["id"]
    created = api.tenant("POST", "/containers", {"name": "t", "egg_id": tenant.egg["id"]}, token)
    assert created.status_code == 202, created.text
    # a tenant's token is no operator's
    refused = api.client.simulate_get("/api/v1/clusters", headers=bearer(token))
    assert error_of(refused) == (401, "unauthorized")

    valid = api.client.simulate_get("/api/auth/validate", headers=bearer(token))
    assert valid.status_code == 200, valid.text
    assert valid.json["valid"] is True
    assert (valid.json["kind"], valid.json["scope"]) == ("token", "tenant")
    assert valid.json["cluster_id"] == tenant.cluster["id"]
    assert valid.json["expires_in"] == 900


def test_an_operator_token_has_the_operator_scope(api: Api) -> None:
    token = login(api, api.operator_key)

    listed = api.client.simulate_get("/api/v1/clusters", headers=bearer(token))
    assert listed.status_code == 200, listed.text
    valid = api.client.simulate_get("/api/auth/validate", headers=bearer(token))
    assert (valid.json["scope"], valid.json["cluster_id"]) == ("operator", None)


def test_revoking_the_key_refuses_its_tokens_at_once(tenant: Tenant) -> None:
    api = tenant.api
    assert api.tenant_key is not None
    token = login(api, api.tenant_key)
    assert api.client.simulate_get("/api/auth/validate", headers=bearer(token)).status_code == 200
    key_id = api.admin("GET", f"/clusters/{tenant.cluster['id']}/keys").json[0]["id"]

    revoked = api.admin("DELETE", f"/clusters/{tenant.cluster['id']}/keys/{key_id}")
    assert revoked.status_code == 204

    for path in ("/api/auth/validate", "/api/public/clusters/v1/cluster", "/api/instances"):
        resp = api.client.simulate_get(path, headers=bearer(token))
        assert error_of(resp) == (401, "unauthorized"), path
    again = api.client.simulate_post("/api/auth/login", json={"api_key": api.tenant_key})
    assert error_of(again) == (401, "unauthorized")


def test_forged_expired_and_foreign_tokens_are_refused(api: Api) -> None:
    token = login(api, api.operator_key)
    prefix, payload, signature = token.split(".")
    forged = ".".join((prefix, payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB"), signature))
    # signed with another secret: the same claims, a different signature
    secret = "test-token-secret"
    claims = verify(token, secret, 0)
    foreign = sign(claims, "another-secret")
    expired = sign(dataclasses.replace(claims, expires_at=claims.issued_at - 1), secret)
    for bad in (forged, foreign, expired, token + "x", "corraltok.", "corraltok.a.b"):
        resp = api.client.simulate_get("/api/auth/validate", headers=bearer(bad))
        assert error_of(resp) == (401, "unauthorized"), bad
    # a token cannot be exchanged for a fresh one
    relogin = api.client.simulate_post("/api/auth/login", json={"api_key": token})
    assert error_of(relogin) == (401, "unauthorized")


@pytest.mark.parametrize(
    "body",
    ['{"api_key": ""}', '{"key": "x"}', "[]", '{"api_key": 5}', "not json"],
)
def test_login_with_bad_bodies_is_a_clear_400_or_401(api: Api, body: str) -> None:
    resp = api.client.simulate_post(
        "/api/auth/login", headers={"Content-Type": "application/json"}, body=body
    )
    status, code = error_of(resp)
    assert (status, code) == (400, "invalid_input")


def test_login_with_an_unknown_key_is_401(api: Api) -> None:
    resp = api.client.simulate_post("/api/auth/login", json={"api_key": "corral_nope"})
    assert error_of(resp) == (401, "unauthorized")


def test_cors_preflight_and_answers_name_the_allowed_origin(api: Api) -> None:
    preflight = api.client.simulate_options(
        "/api/v1/clusters",
        headers={
            "Origin": DASHBOARD,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "Authorization",
        },
    )
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["access-control-allow-origin"] == DASHBOARD
    assert "GET" in preflight.headers["access-control-allow-methods"]
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()

    token = login(api, api.operator_key)
    answer = api.client.simulate_get(
        "/api/v1/clusters", headers=bearer(token) | {"Origin": DASHBOARD}
    )
    assert answer.headers["access-control-allow-origin"] == DASHBOARD
    other = api.client.simulate_get(
        "/api/v1/clusters", headers=bearer(token) | {"Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in other.headers


def test_without_a_token_secret_login_is_off(api: Api, deps: Deps) -> None:
    plain = dataclasses.replace(deps.settings, token_secret=None)
    off = TestClient(create_app(dataclasses.replace(deps, settings=plain)))
    assert off.simulate_get("/api/auth/status").json["token_login"] is False
    resp = off.simulate_post("/api/auth/login", json={"api_key": api.operator_key})
    assert error_of(resp) == (503, "service_unavailable")
