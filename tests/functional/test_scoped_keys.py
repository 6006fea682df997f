"""Scoped keys: narrowed at creation to verbs, containers, eggs and an expiry; reported
by GET /keys/current and the operator's key view; never minted broader than the key
that asks; a read-only key refused on every write route of the app."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import falcon.testing

from handlers.auth import ANY_KEY, OPERATOR, TENANT
from handlers.openapi import routes
from services.deps import Deps
from services.keys import mint_key
from shared.clock import new_id, stamp, utc_now
from shared.keys import KeyScope
from tests.fixtures.corral import Api, Tenant

WRITES = {"POST", "PATCH", "PUT", "DELETE"}


def mint(api: Api, body: dict[str, Any], key: str | None = None) -> falcon.testing.Result:
    return api.tenant("POST", "/keys", body, key=key)


def secret_of(resp: falcon.testing.Result) -> str:
    assert resp.status_code == 201, resp.text
    return str(resp.json["secret"])


def test_a_read_only_key_is_forbidden_on_every_write_route(
    api: Api, tenant: Tenant, deps: Deps
) -> None:
    read_only_tenant = secret_of(mint(api, {"name": "ro", "verbs": ["read"]}))
    _, read_only_operator = mint_key(
        deps.repo, None, "ro-op", utc_now(), new_id, KeyScope(verbs=("read",))
    )
    checked = 0
    for route in routes(api.client.app):
        if route.method not in WRITES or route.auth not in (TENANT, OPERATOR, ANY_KEY):
            continue
        path = route.path
        for name in route.path_params:
            path = path.replace("{" + name + "}", new_id())
        key = read_only_operator if route.auth == OPERATOR else read_only_tenant
        resp = api.client.simulate_request(
            route.method, path, json={}, headers={"Authorization": f"Bearer {key}"}
        )
        assert resp.status_code == 403, f"{route.method} {route.template}: {resp.text}"
        assert resp.json["error"]["code"] == "forbidden", f"{route.method} {route.template}"
        checked += 1
    assert checked > 40  # the whole table, not a handful
    # Reads still work, and nothing was written.
    listed = api.tenant("GET", "/containers", key=read_only_tenant)
    assert listed.status_code == 200 and listed.json == []
    assert api.admin("GET", "/clusters").status_code == 200


def test_scope_is_reported_and_never_widened(api: Api, tenant: Tenant) -> None:
    expires = stamp(utc_now() + timedelta(hours=1))
    writer = secret_of(mint(api, {"name": "w", "verbs": ["read", "write"], "expires_at": expires}))
    current = api.tenant("GET", "/keys/current", key=writer).json
    assert current["scope"] == {"verbs": ["read", "write"], "container_ids": None, "egg_ids": None}
    assert current["expires_at"] == expires
    operator_view = api.admin("GET", f"/clusters/{tenant.cluster['id']}/keys/{current['id']}")
    assert operator_view.json["scope"] == current["scope"]
    assert operator_view.json["expires_at"] == expires

    for broader in (
        {"verbs": ["read", "write", "delete"]},
        {"expires_at": stamp(utc_now() + timedelta(hours=2))},
    ):
        refused = mint(api, {"name": "x", **broader}, key=writer)
        assert refused.status_code == 403, refused.text
        assert refused.json["error"]["code"] == "forbidden"
    # Left out, a field is the minter's own: the child is no broader.
    child = mint(api, {"name": "child", "verbs": ["read"]}, key=writer).json
    assert child["scope"]["verbs"] == ["read"] and child["expires_at"] == expires


def test_a_key_narrowed_to_containers_and_eggs(api: Api, tenant: Tenant) -> None:
    mine = tenant.create(name="mine").json["container"]["id"]
    other_created = tenant.create(name="other").json
    other = other_created["container"]["id"]
    narrow = secret_of(mint(api, {"name": "n", "container_ids": [mine]}))
    listed = api.tenant("GET", "/containers", key=narrow).json
    assert [c["id"] for c in listed] == [mine]
    assert api.tenant("GET", f"/containers/{mine}", key=narrow).status_code == 200
    refused = api.tenant("GET", f"/containers/{other}", key=narrow)
    assert refused.status_code == 403 and refused.json["error"]["code"] == "forbidden"
    other_op = api.tenant("GET", f"/operations/{other_created['operation']['id']}", key=narrow)
    assert other_op.status_code == 403, other_op.text
    operations = api.tenant("GET", "/operations", key=narrow).json
    assert {o["container_id"] for o in operations} == {mine}
    created = api.tenant(
        "POST", "/containers", {"name": "x", "egg_id": tenant.egg["id"]}, key=narrow
    )
    assert created.status_code == 403, created.text
    wider = mint(api, {"name": "w", "container_ids": [mine, other]}, key=narrow)
    assert wider.status_code == 403, wider.text

    other_egg = api.make_egg(name="other-egg")
    api.admin(
        "PATCH",
        f"/clusters/{tenant.cluster['id']}",
        {"egg_ids": [tenant.egg["id"], other_egg["id"]]},
    )
    egg_key = secret_of(mint(api, {"name": "e", "egg_ids": [tenant.egg["id"]]}))
    body = {"name": "y", "egg_id": other_egg["id"]}
    refused = api.tenant("POST", "/containers", body, key=egg_key)
    assert refused.status_code == 403, refused.text


def test_an_expired_key_is_refused_like_a_revoked_one(api: Api, tenant: Tenant) -> None:
    soon = utc_now() + timedelta(seconds=1.5)
    short = secret_of(mint(api, {"name": "short", "expires_at": stamp(soon)}))
    assert api.tenant("GET", "/cluster", key=short).status_code == 200  # cached from here on
    time.sleep(max(0.0, (soon - utc_now()).total_seconds()) + 0.1)
    refused = api.tenant("GET", "/cluster", key=short)
    assert refused.status_code == 401 and refused.json["error"]["code"] == "unauthorized"
    past = mint(api, {"name": "past", "expires_at": stamp(utc_now() - timedelta(seconds=1))})
    assert past.status_code == 400, past.text
