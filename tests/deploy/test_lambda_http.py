"""The Lambda HTTP entry answers API Gateway events (HTTP API v2 and REST v1)
exactly as gunicorn answers the same requests: same status, same JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from handlers import lambda_http
from handlers.app import create_app
from services.deps import Deps
from tests.deploy.conftest import Gunicorn, corral_env
from tests.deploy.events import Request, Response, from_lambda, http_api_v2, rest_api_v1
from tests.fixtures.corral import PUBLIC, Tenant

# Values that differ between two otherwise equal calls (fresh ids, clocks).
VOLATILE_KEYS = {"id", "container_id", "pending_operation", "last_operation"}

Channel = Callable[[Request], Response]


def normalized(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: ("<volatile>" if _volatile(k) and v is not None else normalized(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [normalized(v) for v in value]
    return value


def _volatile(key: str) -> bool:
    return key in VOLATILE_KEYS or key.endswith("_at")


@pytest.fixture
def channels(deps: Deps, gunicorn: Gunicorn) -> dict[str, Channel]:
    """The same request sent three ways: gunicorn over HTTP, and the Lambda
    handler (built from the test's deps) with a v2 and a v1 event."""
    handler = lambda_http.make_handler(create_app(deps))
    return {
        "gunicorn": gunicorn.call,
        "http-api-v2": lambda req: from_lambda(handler(http_api_v2(req), None)),
        "rest-api-v1": lambda req: from_lambda(handler(rest_api_v1(req), None)),
        "http-api-v2-base64": lambda req: from_lambda(
            handler(http_api_v2(req, base64_body=True), None)
        ),
        "rest-api-v1-base64": lambda req: from_lambda(
            handler(rest_api_v1(req, base64_body=True), None)
        ),
    }


def same_everywhere(channels: dict[str, Channel], req: Request) -> tuple[int, Any]:
    """Send `req` through every channel; assert one status and one JSON body (up
    to fresh ids and clocks); return gunicorn's status and body."""
    answers, raw = {}, {}
    for name, send in channels.items():
        resp = send(req)
        assert resp.headers.get("content-type", "").startswith("application/json"), (name, resp)
        raw[name] = (resp.status, json.loads(resp.body))
        answers[name] = (resp.status, normalized(raw[name][1]))
    reference = answers["gunicorn"]
    for name, answer in answers.items():
        assert answer == reference, f"{name} answered {answer}, gunicorn {reference}"
    return raw["gunicorn"]


def bearer(key: str) -> dict[str, list[str]]:
    return {"Authorization": [f"Bearer {key}"]}


def test_health(channels: dict[str, Channel], deps: Deps) -> None:
    status, body = same_everywhere(channels, Request("GET", "/health"))
    assert status == 200
    assert body["status"] == "healthy"


def test_cluster_with_a_key(channels: dict[str, Channel], tenant: Tenant) -> None:
    req = Request("GET", f"{PUBLIC}/cluster", headers=bearer(tenant.api.tenant_key or ""))
    status, body = same_everywhere(channels, req)
    assert status == 200
    assert body["id"] == tenant.cluster["id"]


def test_missing_key_is_the_same_401(channels: dict[str, Channel], tenant: Tenant) -> None:
    status, body = same_everywhere(channels, Request("GET", f"{PUBLIC}/cluster"))
    assert status == 401
    assert body["error"]["code"] == "unauthorized"


def test_create_container_with_a_json_body(channels: dict[str, Channel], tenant: Tenant) -> None:
    payload = {"name": "web", "egg_id": tenant.egg["id"], "ram_mb": 64}
    req = Request(
        "POST",
        f"{PUBLIC}/containers",
        headers=bearer(tenant.api.tenant_key or "") | {"Content-Type": ["application/json"]},
        body=json.dumps(payload).encode(),
    )
    status, body = same_everywhere(channels, req)
    assert status == 202, body
    assert body["container"]["status"] == "provisioning"
    assert body["operation"]["status"] == "queued"
    # Five channels, five containers: every one really reached the table.
    listed = tenant.api.tenant("GET", "/containers").json
    assert len(listed) == len(channels)


def test_invalid_json_is_the_same_400_envelope(
    channels: dict[str, Channel], tenant: Tenant
) -> None:
    req = Request(
        "POST",
        f"{PUBLIC}/containers",
        headers=bearer(tenant.api.tenant_key or "") | {"Content-Type": ["application/json"]},
        body=b'{"name": "web", ',
    )
    status, body = same_everywhere(channels, req)
    assert status == 400
    assert set(body) == {"error"}
    assert body["error"]["code"] == "invalid_input"


def test_wait_with_a_query_string(channels: dict[str, Channel], tenant: Tenant) -> None:
    created = tenant.create()
    assert created.status_code == 202, created.text
    op_id = created.json["operation"]["id"]
    req = Request(
        "GET",
        f"{PUBLIC}/operations/{op_id}/wait",
        query=[("timeout", "0.1")],
        headers=bearer(tenant.api.tenant_key or ""),
    )
    status, body = same_everywhere(channels, req)
    assert status == 200
    assert body["status"] == "queued"
    # The query string really reached the app: a bad value is refused alike.
    bad = Request("GET", req.path, query=[("timeout", "soon")], headers=req.headers)
    status, body = same_everywhere(channels, bad)
    assert status == 400
    assert "timeout" in body["error"]["message"]


def test_multi_value_headers(channels: dict[str, Channel], tenant: Tenant) -> None:
    """Repeated headers arrive joined (REST v1 multiValueHeaders, HTTP API
    comma-joined); the request still authenticates and negotiates JSON."""
    req = Request(
        "GET",
        f"{PUBLIC}/capacity",
        headers=bearer(tenant.api.tenant_key or "")
        | {"Accept": ["application/json", "text/plain;q=0.5"], "X-Trace": ["a", "b"]},
    )
    status, _ = same_everywhere(channels, req)
    assert status == 200


def test_unknown_route_is_the_same_404(channels: dict[str, Channel]) -> None:
    status, _ = same_everywhere(channels, Request("GET", "/no/such/route"))
    assert status == 404


def test_production_handler_builds_from_the_environment(
    deps: Deps, monkeypatch: pytest.MonkeyPatch, table_endpoint: str, redis_url: str
) -> None:
    """`lambda_http.handler` builds the app from the environment on the first
    event and reuses it after."""
    for name, value in corral_env(table_endpoint, redis_url).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(lambda_http, "_built", None)
    first = from_lambda(lambda_http.handler(http_api_v2(Request("GET", "/health")), None))
    built = lambda_http._built
    second = from_lambda(lambda_http.handler(rest_api_v1(Request("GET", "/health")), None))
    assert (first.status, second.status) == (200, 200)
    assert json.loads(first.body)["status"] == "healthy"
    assert built is not None and lambda_http._built is built
