"""Bearer keys: who may call the tenant routes, and a cluster that is not active."""

from __future__ import annotations

from typing import Any

import falcon.testing
import pytest
import redis as redis_lib

from infra.table import schema
from infra.table.expression import Expression
from infra.table.repository import Repository
from tests.fixtures.corral import Api, Tenant

PUBLIC = "/api/public/clusters/v1"
ADMIN = "/api/v1"
SOME_ID = "0c7d8a4e-0000-4000-8000-000000000000"


def tenant_routes(container_id: str, operation_id: str, egg_id: str) -> list[tuple[str, str, Any]]:
    """Every tenant route and method, with a body that would be accepted."""
    return [
        ("GET", "/cluster", None),
        ("GET", "/capacity", None),
        ("GET", "/eggs", None),
        ("GET", "/containers", None),
        ("POST", "/containers", {"name": "web", "egg_id": egg_id}),
        ("GET", f"/containers/{container_id}", None),
        ("PATCH", f"/containers/{container_id}", {"name": "renamed"}),
        ("DELETE", f"/containers/{container_id}", None),
        ("POST", f"/containers/{container_id}/power", {"signal": "stop"}),
        ("GET", f"/operations/{operation_id}", None),
        ("GET", f"/operations/{operation_id}/wait?timeout=0", None),
    ]


def call(
    api: Api, method: str, path: str, body: Any, headers: dict[str, str]
) -> falcon.testing.Result:
    path, _, query = path.partition("?")
    kw: dict[str, Any] = {"headers": headers, "query_string": query}
    if body is not None:
        kw["json"] = body
    return api.client.simulate_request(method, PUBLIC + path, **kw)


def assert_error(resp: falcon.testing.Result, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    assert set(resp.json) == {"error"}, resp.text
    assert resp.json["error"]["code"] == code, resp.text
    assert resp.json["error"]["message"], resp.text


def set_cluster_status(repo: Repository, cluster_id: str, status: str) -> None:
    repo.db.update(schema.cluster_pk(cluster_id), schema.META, Expression().set("status", status))


@pytest.fixture
def existing(tenant: Tenant) -> dict[str, str]:
    created = tenant.create().json
    return {
        "container_id": created["container"]["id"],
        "operation_id": created["operation"]["id"],
        "egg_id": tenant.egg["id"],
    }


BAD_HEADERS = [
    None,
    "",
    "Bearer",
    "Bearer ",
    "Bearer    ",
    "Basic dXNlcjpwYXNz",
    "Token corral_abc",
    "corral_abc",
    "Bearer corral_unknown-key",
    "Bearer " + "x" * 201,
]


def test_every_tenant_route_refuses_a_missing_or_invalid_key(
    api: Api, existing: dict[str, str]
) -> None:
    for header in BAD_HEADERS:
        headers = {} if header is None else {"Authorization": header}
        for method, path, body in tenant_routes(**existing):
            resp = call(api, method, path, body, headers)
            assert_error(resp, 401, "unauthorized")
    assert len(api.tenant("GET", "/containers").json) == 1


def test_the_key_is_the_whole_token(api: Api, existing: dict[str, str]) -> None:
    key = api.tenant_key
    assert key is not None
    for token in (key[:-1], key + "x", key.upper(), f"{key} {key}"):
        resp = call(api, "GET", "/cluster", None, {"Authorization": f"Bearer {token}"})
        assert_error(resp, 401, "unauthorized")


def test_surrounding_spaces_in_the_token_are_ignored(api: Api, existing: dict[str, str]) -> None:
    resp = call(api, "GET", "/cluster", None, {"Authorization": f"Bearer  {api.tenant_key} "})

    assert resp.status_code == 200, resp.text


def test_the_bearer_scheme_is_case_insensitive(api: Api, existing: dict[str, str]) -> None:
    resp = call(api, "GET", "/cluster", None, {"Authorization": f"bearer {api.tenant_key}"})

    assert resp.status_code == 200, resp.text


def test_an_operator_key_is_refused_on_every_tenant_route(
    api: Api, existing: dict[str, str]
) -> None:
    headers = {"Authorization": f"Bearer {api.operator_key}"}
    for method, path, body in tenant_routes(**existing):
        resp = call(api, method, path, body, headers)
        assert_error(resp, 401, "unauthorized")
    assert len(api.tenant("GET", "/containers").json) == 1


def test_a_tenant_key_is_refused_on_operator_routes(api: Api, tenant: Tenant) -> None:
    headers = {"Authorization": f"Bearer {api.tenant_key}"}
    cases: list[tuple[str, str, Any]] = [
        ("GET", "/clusters", None),
        ("POST", "/clusters", {"name": "x", "plan": {"ram_mb": 1}}),
        ("GET", "/eggs", None),
        ("POST", "/eggs", {"name": "x", "image": "busybox"}),
        ("GET", "/hosts", None),
        ("GET", "/nodes", None),
        ("GET", f"/clusters/{tenant.cluster['id']}", None),
        ("GET", f"/clusters/{tenant.cluster['id']}/keys", None),
        ("POST", f"/clusters/{tenant.cluster['id']}/keys", {"name": "mine"}),
    ]
    for method, path, body in cases:
        kw: dict[str, Any] = {"headers": headers}
        if body is not None:
            kw["json"] = body
        resp = api.client.simulate_request(method, ADMIN + path, **kw)
        assert_error(resp, 401, "unauthorized")
    assert len(api.admin("GET", f"/clusters/{tenant.cluster['id']}/keys").json) == 1


def test_keys_of_two_clusters_each_work(api: Api, tenant: Tenant) -> None:
    second = api.make_key(tenant.cluster["id"], name="second")

    assert api.tenant("GET", "/cluster").status_code == 200
    assert api.tenant("GET", "/cluster", key=second).json["id"] == tenant.cluster["id"]


@pytest.mark.parametrize("status", ["suspended", "expired"])
def test_every_tenant_route_refuses_a_cluster_that_is_not_active(
    api: Api,
    repo: Repository,
    redis_conn: redis_lib.Redis[bytes],
    existing: dict[str, str],
    status: str,
) -> None:
    cluster_id = api.tenant("GET", "/cluster").json["id"]
    set_cluster_status(repo, cluster_id, status)
    redis_conn.flushall()  # the principal (with the cluster's status) is cached

    headers = {"Authorization": f"Bearer {api.tenant_key}"}
    for method, path, body in tenant_routes(**existing):
        resp = call(api, method, path, body, headers)
        assert_error(resp, 403, "invalid_cluster")
        assert status in resp.json["error"]["message"]

    # Nothing changed behind the refusals.
    set_cluster_status(repo, cluster_id, "active")
    redis_conn.flushall()
    listed = api.tenant("GET", "/containers").json
    assert [c["name"] for c in listed] == ["web"]
    assert listed[0]["pending_operation"] == existing["operation_id"]


def test_a_suspended_cluster_cannot_reserve_even_while_its_key_is_cached(
    api: Api, tenant: Tenant, repo: Repository
) -> None:
    assert api.tenant("GET", "/cluster").status_code == 200  # caches the principal
    set_cluster_status(repo, tenant.cluster["id"], "suspended")

    resp = tenant.create()

    assert_error(resp, 403, "invalid_cluster")
    assert repo.clusters.get(tenant.cluster["id"]).container_count == 0


def test_reactivating_a_cluster_lets_its_keys_back_in(
    api: Api, tenant: Tenant, repo: Repository, redis_conn: redis_lib.Redis[bytes]
) -> None:
    set_cluster_status(repo, tenant.cluster["id"], "suspended")
    redis_conn.flushall()
    assert_error(api.tenant("GET", "/cluster"), 403, "invalid_cluster")

    set_cluster_status(repo, tenant.cluster["id"], "active")
    redis_conn.flushall()

    assert api.tenant("GET", "/cluster").status_code == 200
    assert tenant.create().status_code == 202


def test_the_secret_is_not_stored(api: Api, tenant: Tenant, repo: Repository) -> None:
    keys = api.admin("GET", f"/clusters/{tenant.cluster['id']}/keys").json
    assert len(keys) == 1
    assert "secret" not in keys[0]
    assert api.tenant_key is not None
    assert repo.db.get(schema.key_pk(api.tenant_key), schema.META) is None


def test_a_revoked_key_is_refused_at_once_and_the_others_still_work(
    api: Api, tenant: Tenant
) -> None:
    second = api.make_key(tenant.cluster["id"], name="second")
    assert api.tenant("GET", "/cluster").status_code == 200  # cached now
    keys = api.admin("GET", f"/clusters/{tenant.cluster['id']}/keys").json
    first_id = next(k["id"] for k in keys if k["name"] == "k")

    revoked = api.admin("DELETE", f"/clusters/{tenant.cluster['id']}/keys/{first_id}")

    assert revoked.status_code == 204, revoked.text
    assert_error(api.tenant("GET", "/cluster"), 401, "unauthorized")
    assert_error(tenant.create(), 401, "unauthorized")
    assert api.tenant("GET", "/cluster", key=second).status_code == 200
