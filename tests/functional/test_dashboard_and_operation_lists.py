"""The dashboard's files at `/` and `/web/`, and the two listings of recent operations
it shows: the tenant's (`GET /operations`) and the operator's (`GET /api/v1/operations`)."""

from __future__ import annotations

import pytest

from services.deps import Deps
from tests.fixtures.corral import Api, Tenant, error_of, make_tenant
from tests.functional.test_tenant_reads import settle


def test_the_dashboard_page_and_its_assets_are_served_with_a_strict_policy(api: Api) -> None:
    page = api.client.simulate_get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script src="/web/app.js"' in page.text
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    for name, kind in [("app.js", "text/javascript"), ("app.css", "text/css")]:
        asset = api.client.simulate_get(f"/web/{name}")
        assert asset.status_code == 200
        assert asset.headers["content-type"].startswith(kind)
        assert asset.headers["x-content-type-options"] == "nosniff"
    # The page needs no key (it asks for one); a key is no use to it either.
    assert api.client.simulate_get("/", headers={"Authorization": "Bearer nope"}).status_code == 200


@pytest.mark.parametrize("name", ["nope.js", "..%2Fapp.py", "index.htm"])
def test_no_other_file_is_served(api: Api, name: str) -> None:
    assert error_of(api.client.simulate_get(f"/web/{name}")) == (404, "not_found")


def test_tenant_operations_newest_first_and_limited(tenant: Tenant, api: Api, deps: Deps) -> None:
    first = tenant.create(name="one").json
    settle(deps, tenant.cluster["id"], first["container"]["id"])
    second = tenant.create(name="two").json

    listed = api.tenant("GET", "/operations")
    assert listed.status_code == 200, listed.text
    assert [o["id"] for o in listed.json] == [
        second["operation"]["id"],
        first["operation"]["id"],
    ]
    assert listed.json[1] == api.tenant("GET", f"/operations/{first['operation']['id']}").json
    assert [o["id"] for o in api.tenant("GET", "/operations?limit=1").json] == [
        second["operation"]["id"]
    ]


@pytest.mark.parametrize("limit", ["0", "101", "-1", "x", "1.5", "99999"])
def test_a_bad_limit_is_a_400(tenant: Tenant, api: Api, limit: str) -> None:
    assert error_of(api.tenant("GET", f"/operations?limit={limit}")) == (400, "invalid_input")
    assert error_of(api.admin("GET", f"/operations?limit={limit}")) == (400, "invalid_input")


def test_a_tenant_sees_only_its_own_operations(tenant: Tenant, api: Api) -> None:
    mine = tenant.create(name="mine").json["operation"]["id"]
    other = make_tenant(api)  # another cluster; api.tenant_key is now its key
    theirs = other.create(name="theirs").json["operation"]["id"]
    assert [o["id"] for o in api.tenant("GET", "/operations").json] == [theirs]

    fleet = api.admin("GET", "/operations")
    assert fleet.status_code == 200, fleet.text
    assert [(o["id"], o["cluster_id"]) for o in fleet.json] == [
        (theirs, other.cluster["id"]),
        (mine, tenant.cluster["id"]),
    ]
    assert "error_detail" in fleet.json[0]


def test_the_fleet_operations_take_the_operator_key(tenant: Tenant, api: Api) -> None:
    answer = api.client.simulate_get(
        "/api/v1/operations", headers={"Authorization": f"Bearer {api.tenant_key}"}
    )
    assert error_of(answer) == (401, "unauthorized")
