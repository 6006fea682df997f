"""Operator API, clusters: create, list and get with their totals, PATCH (name, plan,
allow-list) with a plan never dropping below what is in use, and suspend, reactivate
and expire taking effect on the tenant's very next call."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import falcon.testing
import pytest

from services.deps import Deps
from shared.clock import utc_now
from shared.states import WorkloadStatus
from tests.fixtures.corral import Api, Tenant, error_of, make_tenant

UNKNOWN_ID = "0c7d8a4e-0000-4000-8000-000000000000"
PLAN: dict[str, Any] = {
    "name": "small",
    "cpu_cores": 2.5,
    "ram_mb": 2048,
    "storage_mb": 10240,
    "io": 500,
    "ports": 4,
    "databases": 1,
    "backups": 3,
    "containers": 3,
}
RESOURCE_FIELDS = ("cpu_cores", "ram_mb", "storage_mb", "io", "ports", "databases", "backups")
# The egg's defaults (tests/fixtures/corral.py), which each created container takes.
EGG_DEFAULTS = {"cpu_cores": 0.5, "ram_mb": 64, "storage_mb": 256, "io": 100}


def settle(deps: Deps, cluster_id: str, container_id: str, status: str, **kw: Any) -> None:
    """Record an operation's outcome as the worker would."""
    workload = deps.repo.workloads.get(cluster_id, container_id)
    assert workload.pending_op is not None
    operation = deps.repo.operations.get(cluster_id, workload.pending_op)
    assert deps.repo.finish_operation(
        operation, workload, status=WorkloadStatus(status), now=utc_now(), error=None, **kw
    )


def create_cluster(api: Api, body: dict[str, Any]) -> falcon.testing.Result:
    return api.admin("POST", "/clusters", body)


def limits(**changes: Any) -> dict[str, Any]:
    return PLAN | changes


def used_view(**values: Any) -> dict[str, Any]:
    return {f: 0.0 if f == "cpu_cores" else 0 for f in RESOURCE_FIELDS} | {"containers": 0} | values


# -- create -------------------------------------------------------------------------


def test_create_shows_the_plan_as_totals_with_nothing_used(api: Api) -> None:
    egg = api.make_egg()
    resp = create_cluster(api, {"name": "acme", "plan": PLAN, "egg_ids": [egg["id"], egg["id"]]})

    assert resp.status_code == 201, resp.text
    cluster = resp.json
    totals = {k: v for k, v in PLAN.items() if k != "name"}
    assert cluster["name"] == "acme"
    assert cluster["status"] == "active"
    assert cluster["plan"] == {
        "name": "small",
        "limits": totals,
        "default_lifetime": None,
        "max_lifetime": None,
        "requests_per_minute": None,
        "cluster_requests_per_minute": None,
    }
    assert cluster["totals"] == totals
    assert cluster["used"] == used_view()
    assert cluster["remaining"] == totals
    assert cluster["egg_ids"] == [egg["id"]]  # duplicates dropped
    assert cluster["node_count"] == 0 and cluster["running_tasks"] == 0
    assert cluster["created_at"] == cluster["updated_at"]
    assert api.admin("GET", f"/clusters/{cluster['id']}").json == cluster


def test_an_empty_plan_is_all_zero_limits(api: Api) -> None:
    resp = create_cluster(api, {"name": "empty", "plan": {}})

    assert resp.status_code == 201, resp.text
    assert resp.json["plan"]["name"] == "custom"
    assert resp.json["totals"] == used_view()
    assert resp.json["egg_ids"] == []


OUT_OF_RANGE = [
    *(({field: -1}, f"plan.{field}") for field in (*RESOURCE_FIELDS, "containers")),
    *(({field: 10**30}, f"plan.{field}") for field in (*RESOURCE_FIELDS, "containers")),
    ({"cpu_cores": 1e308}, "plan.cpu_cores"),
    ({"cpu_cores": 0.001}, "plan.cpu_cores"),
    ({"ram_mb": 1.5}, "plan.ram_mb"),
    ({"default_lifetime": 0}, "plan.default_lifetime"),
    ({"max_lifetime": 10**12}, "plan.max_lifetime"),
    ({"default_lifetime": 7200, "max_lifetime": 3600}, "default_lifetime"),
]


def test_create_refuses_limits_out_of_range(api: Api) -> None:
    for plan, where in OUT_OF_RANGE:
        resp = create_cluster(api, {"name": "c", "plan": plan})
        assert error_of(resp) == (400, "invalid_input"), plan
        assert where in resp.json["error"]["message"], plan
    assert api.admin("GET", "/clusters").json == []


def test_create_refuses_unknown_egg_ids_and_names_them(api: Api) -> None:
    egg = api.make_egg()
    resp = create_cluster(api, {"name": "c", "plan": PLAN, "egg_ids": [egg["id"], UNKNOWN_ID]})

    assert error_of(resp) == (400, "invalid_input")
    assert UNKNOWN_ID in resp.json["error"]["message"]
    assert egg["id"] not in resp.json["error"]["message"]
    assert api.admin("GET", "/clusters").json == []


# -- list and get -------------------------------------------------------------------


def test_list_and_get_count_nodes_running_tasks_and_use(api: Api, deps: Deps) -> None:
    tenant = make_tenant(api, **limits())
    idle = create_cluster(api, {"name": "idle", "plan": PLAN}).json
    first = tenant.create(name="a").json["container"]["id"]
    tenant.create(name="b")
    settle(deps, tenant.cluster["id"], first, "running")

    got = api.admin("GET", f"/clusters/{tenant.cluster['id']}").json

    assert got["node_count"] == 1  # both on the one host
    assert got["running_tasks"] == 1  # the other is still provisioning
    doubled = {k: v * 2 for k, v in EGG_DEFAULTS.items()}
    assert got["used"] == used_view(**doubled, containers=2)
    assert got["remaining"]["ram_mb"] == PLAN["ram_mb"] - 128
    assert got["remaining"]["cpu_cores"] == pytest.approx(PLAN["cpu_cores"] - 1.0)
    assert got["remaining"]["containers"] == PLAN["containers"] - 2
    assert got["totals"]["ram_mb"] == PLAN["ram_mb"]
    listed = {c["id"]: c for c in api.admin("GET", "/clusters").json}
    assert set(listed) == {tenant.cluster["id"], idle["id"]}
    assert listed[tenant.cluster["id"]] == got
    assert (listed[idle["id"]]["node_count"], listed[idle["id"]]["running_tasks"]) == (0, 0)


def test_deleted_workloads_count_neither_as_nodes_nor_tasks(api: Api, deps: Deps) -> None:
    tenant = make_tenant(api)
    cid = tenant.create().json["container"]["id"]
    settle(deps, tenant.cluster["id"], cid, "running")
    assert api.tenant("DELETE", f"/containers/{cid}").status_code == 202
    settle(deps, tenant.cluster["id"], cid, "deleted", release=True)

    got = api.admin("GET", f"/clusters/{tenant.cluster['id']}").json

    assert (got["node_count"], got["running_tasks"]) == (0, 0)
    assert got["used"] == used_view()


def test_unknown_or_malformed_cluster_is_not_found(api: Api) -> None:
    for cluster_id in (UNKNOWN_ID, "no%20such", "x" * 81):
        for method, suffix, body in [
            ("GET", "", None),
            ("PATCH", "", {"name": "x"}),
            ("PATCH", "", {"plan": PLAN}),
            ("POST", "/suspend", None),
            ("POST", "/reactivate", None),
            ("POST", "/expire", None),
            ("GET", "/keys", None),
            ("POST", "/keys", {"name": "k"}),
        ]:
            resp = api.admin(method, f"/clusters/{cluster_id}{suffix}", body)
            assert error_of(resp) == (404, "not_found"), (method, suffix, cluster_id)
    assert api.admin("GET", "/clusters").json == []


# -- PATCH --------------------------------------------------------------------------


def test_patch_renames(api: Api, tenant: Tenant) -> None:
    cluster_id = tenant.cluster["id"]
    resp = api.admin("PATCH", f"/clusters/{cluster_id}", {"name": "  renamed  "})

    assert resp.status_code == 200, resp.text
    assert resp.json["name"] == "renamed"
    assert resp.json["totals"] == tenant.cluster["totals"]
    assert resp.json["updated_at"] >= tenant.cluster["updated_at"]
    assert api.tenant("GET", "/cluster").json["name"] == "renamed"


def test_an_empty_patch_is_invalid_input(api: Api, tenant: Tenant) -> None:
    path = f"/clusters/{tenant.cluster['id']}"
    before = api.admin("GET", path).json

    for body in ({}, {"name": None}, {"name": None, "plan": None, "egg_ids": None}):
        assert error_of(api.admin("PATCH", path, body)) == (400, "invalid_input"), body

    assert api.admin("GET", path).json == before


def test_patch_replaces_the_allow_list(api: Api, tenant: Tenant) -> None:
    cluster_id = tenant.cluster["id"]
    other = api.make_egg(name="other")

    resp = api.admin("PATCH", f"/clusters/{cluster_id}", {"egg_ids": [other["id"]]})

    assert resp.status_code == 200, resp.text
    assert resp.json["egg_ids"] == [other["id"]]
    assert [e["id"] for e in api.tenant("GET", "/eggs").json] == [other["id"]]
    assert error_of(tenant.create()) == (400, "egg_not_allowed")
    assert tenant.create(egg_id=other["id"]).status_code == 202

    cleared = api.admin("PATCH", f"/clusters/{cluster_id}", {"egg_ids": []})
    assert cleared.status_code == 200 and cleared.json["egg_ids"] == []


def test_patch_refuses_unknown_eggs_and_changes_nothing(api: Api, tenant: Tenant) -> None:
    path = f"/clusters/{tenant.cluster['id']}"
    before = api.admin("GET", path).json

    resp = api.admin("PATCH", path, {"name": "new", "egg_ids": [UNKNOWN_ID]})

    assert error_of(resp) == (400, "invalid_input")
    assert UNKNOWN_ID in resp.json["error"]["message"]
    assert api.admin("GET", path).json == before


def test_growing_the_plan_lets_the_tenant_use_more(api: Api, tenant: Tenant) -> None:
    cluster_id = tenant.cluster["id"]
    big = tenant.create(name="big", ram_mb=8192)
    assert error_of(big) == (409, "capacity_exceeded")

    grown = limits(name="large", ram_mb=16384, containers=10)
    resp = api.admin("PATCH", f"/clusters/{cluster_id}", {"plan": grown})

    assert resp.status_code == 200, resp.text
    assert resp.json["plan"]["name"] == "large"
    assert resp.json["totals"]["ram_mb"] == 16384
    assert resp.json["remaining"]["containers"] == 10
    assert api.tenant("GET", "/capacity").json["totals"]["ram_mb"] == 16384
    assert tenant.create(name="big", ram_mb=8192).status_code == 202


def test_a_plan_below_what_is_used_is_refused_and_nothing_changes(api: Api, tenant: Tenant) -> None:
    path = f"/clusters/{tenant.cluster['id']}"
    assert tenant.create().status_code == 202
    before = api.admin("GET", path).json

    for field, below, named in [
        ("cpu_cores", 0.25, "CPU"),
        ("ram_mb", 32, "RAM"),
        ("storage_mb", 128, "storage"),
        ("io", 50, "IO"),
        ("containers", 0, "containers"),
    ]:
        body = {"name": "renamed", "plan": limits(**{field: below}), "egg_ids": []}
        resp = api.admin("PATCH", path, body)
        assert error_of(resp) == (409, "plan_below_usage"), field
        assert named in resp.json["error"]["message"], field

    assert api.admin("GET", path).json == before


def test_a_plan_exactly_at_use_is_accepted_and_leaves_nothing(api: Api, tenant: Tenant) -> None:
    cluster_id = tenant.cluster["id"]
    assert tenant.create().status_code == 202
    exact = {"name": "exact", **EGG_DEFAULTS, "containers": 1}

    resp = api.admin("PATCH", f"/clusters/{cluster_id}", {"plan": exact})

    assert resp.status_code == 200, resp.text
    assert resp.json["remaining"] == used_view()
    assert error_of(tenant.create(name="more")) == (409, "container_limit_reached")


def test_a_plan_shrinking_while_tenants_create_never_ends_below_use(api: Api, deps: Deps) -> None:
    tenant = make_tenant(api, **limits(ram_mb=4096, containers=12, cpu_cores=12))
    small = limits(name="small", ram_mb=4096, containers=3, cpu_cores=12)

    def act(i: int) -> falcon.testing.Result:
        if i == 4:
            return api.admin("PATCH", f"/clusters/{tenant.cluster['id']}", {"plan": small})
        return tenant.create(name=f"c{i}", cpu_cores=0.1, ram_mb=16)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(act, range(12)))

    patch = results[4]
    created = sum(r.status_code == 202 for i, r in enumerate(results) if i != 4)
    record = deps.repo.clusters.get(tenant.cluster["id"])
    assert record.container_count == created == len(deps.repo.workloads.in_cluster(record.id))
    assert record.container_count <= record.plan.max_containers
    if patch.status_code == 200:
        assert record.plan.max_containers == 3
    else:
        assert error_of(patch) == (409, "plan_below_usage")
        assert record.plan.max_containers == 12 and created > 3
    refused = [error_of(r) for i, r in enumerate(results) if i != 4 and r.status_code != 202]
    assert set(refused) <= {(409, "container_limit_reached"), (409, "conflict")}, refused


def test_lifetimes_in_the_plan_shape_new_workloads(api: Api) -> None:
    tenant = make_tenant(api, default_lifetime=3600, max_lifetime=7200)
    assert tenant.cluster["plan"]["default_lifetime"] == 3600
    assert tenant.cluster["plan"]["max_lifetime"] == 7200

    before = utc_now()
    plain = tenant.create(name="plain").json["container"]
    expires = datetime.fromisoformat(plain["expires_at"])
    assert before + timedelta(seconds=3590) <= expires <= utc_now() + timedelta(seconds=3610)
    assert error_of(tenant.create(name="long", lifetime=7201)) == (400, "invalid_input")
    assert tenant.create(name="max", lifetime=7200).status_code == 202

    patched = api.admin(
        "PATCH", f"/clusters/{tenant.cluster['id']}", {"plan": limits(max_lifetime=60)}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json["plan"]["default_lifetime"] is None
    assert patched.json["plan"]["max_lifetime"] == 60
    capped = tenant.create(name="capped").json["container"]
    assert datetime.fromisoformat(capped["expires_at"]) <= utc_now() + timedelta(seconds=61)


# -- suspend, reactivate, expire ------------------------------------------------------


@pytest.mark.parametrize(("action", "status"), [("suspend", "suspended"), ("expire", "expired")])
def test_the_tenants_very_next_call_is_refused_and_reactivate_lets_it_back(
    api: Api, tenant: Tenant, action: str, status: str
) -> None:
    cluster_id = tenant.cluster["id"]
    second = api.make_key(cluster_id, name="second")
    assert api.tenant("GET", "/cluster").status_code == 200  # both principals cached
    assert api.tenant("GET", "/cluster", key=second).status_code == 200

    resp = api.admin("POST", f"/clusters/{cluster_id}/{action}")

    assert resp.status_code == 200, resp.text
    assert resp.json["status"] == status
    assert resp.json["id"] == cluster_id and "node_count" in resp.json
    for key in (None, second):
        refused = api.tenant("GET", "/cluster", key=key)
        assert error_of(refused) == (403, "invalid_cluster")
        assert status in refused.json["error"]["message"]
    assert error_of(tenant.create()) == (403, "invalid_cluster")
    assert api.admin("GET", f"/clusters/{cluster_id}").json["status"] == status
    listed = api.admin("GET", "/clusters").json
    assert [c["status"] for c in listed] == [status]

    back = api.admin("POST", f"/clusters/{cluster_id}/reactivate")

    assert back.status_code == 200 and back.json["status"] == "active"
    assert api.tenant("GET", "/cluster").json["status"] == "active"
    assert tenant.create().status_code == 202
    assert api.tenant("GET", "/containers", key=second).status_code == 200


def test_status_changes_chain_and_repeat(api: Api, tenant: Tenant) -> None:
    cluster_id = tenant.cluster["id"]
    for action, status in [
        ("suspend", "suspended"),
        ("suspend", "suspended"),
        ("expire", "expired"),
        ("reactivate", "active"),
        ("reactivate", "active"),
    ]:
        resp = api.admin("POST", f"/clusters/{cluster_id}/{action}")
        assert (resp.status_code, resp.json["status"]) == (200, status), action
    assert api.tenant("GET", "/cluster").status_code == 200


def test_suspending_one_cluster_leaves_the_others_alone(api: Api, tenant: Tenant) -> None:
    other = api.make_cluster([tenant.egg["id"]])
    other_key = api.make_key(other["id"])
    assert api.tenant("GET", "/cluster", key=other_key).status_code == 200

    api.admin("POST", f"/clusters/{tenant.cluster['id']}/suspend")

    assert error_of(api.tenant("GET", "/cluster")) == (403, "invalid_cluster")
    assert api.tenant("GET", "/cluster", key=other_key).json["id"] == other["id"]


def test_the_operator_cannot_instantiate_into_a_suspended_cluster(api: Api, tenant: Tenant) -> None:
    api.admin("POST", f"/clusters/{tenant.cluster['id']}/suspend")

    resp = api.admin(
        "POST",
        f"/templates/{tenant.egg['id']}/instantiate",
        {"cluster_id": tenant.cluster["id"], "name": "t"},
    )

    assert error_of(resp) == (403, "invalid_cluster")
    assert api.admin("GET", f"/clusters/{tenant.cluster['id']}").json["used"] == used_view()
