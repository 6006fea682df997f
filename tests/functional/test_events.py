"""The event log through the API: every change appends one event to its cluster's
log, in commit order; tenants page through their cluster's, operators through all of
them, filtered by actor and resource; secrets never enter it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from services.deps import Deps
from tests.fixtures.corral import Api, Tenant, error_of, make_tenant


def tenant_events(api: Api, key: str | None = None, **params: Any) -> dict[str, Any]:
    resp = api.tenant("GET", "/events", key=key, params=params)
    assert resp.status_code == 200, resp.text
    return dict(resp.json)


def all_tenant_events(api: Api, key: str | None = None, **params: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = tenant_events(api, key, **params, **({"after": cursor} if cursor else {}))
        found += page["events"]
        if not page["events"]:
            return found
        cursor = page["cursor"]


def test_a_created_and_renewed_container_is_in_the_log_in_order(api: Api, tenant: Tenant) -> None:
    created = tenant.create()
    assert created.status_code == 202, created.text
    cid = created.json["container"]["id"]
    renewed = api.tenant("POST", f"/containers/{cid}/lease", {"lifetime": 3000})
    assert renewed.status_code == 200, renewed.text

    events = all_tenant_events(api)
    types = [e["type"] for e in events]
    assert types == ["cluster.created", "key.created", "workload.created",
                     "operation.created", "workload.renewed"]  # fmt: skip
    assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
    made = events[2]
    assert made["resource"] == {"kind": "workload", "id": cid}
    assert made["after"]["name"] == "web" and made["before"] is None
    assert made["cluster_id"] == tenant.cluster["id"]
    tenant_key_id = events[1]["resource"]["id"]
    assert made["actor"] == tenant_key_id  # the tenant's own key made it
    assert events[0]["actor"] != tenant_key_id  # the operator's key made the cluster
    assert events[4]["before"]["expires_at"] != events[4]["after"]["expires_at"]


def test_a_page_resumes_after_its_cursor_and_types_filter(api: Api, tenant: Tenant) -> None:
    cid = tenant.create().json["container"]["id"]
    for lifetime in (1000, 2000, 3000):
        assert (
            api.tenant("POST", f"/containers/{cid}/lease", {"lifetime": lifetime}).status_code
            == 200
        )
    first = tenant_events(api, limit=2)
    assert [e["sequence"] for e in first["events"]] == [1, 2]
    rest = tenant_events(api, after=first["cursor"], limit=100)
    assert [e["sequence"] for e in rest["events"]] == [3, 4, 5, 6, 7]
    renewals = tenant_events(api, types="workload.renewed")["events"]
    assert [e["after"]["expires_at"] is not None for e in renewals] == [True] * 3
    kinds = tenant_events(api, types="workload")["events"]
    assert {e["type"] for e in kinds} == {"workload.created", "workload.renewed"}
    assert tenant_events(api, after=rest["cursor"])["events"] == []


def test_bad_cursors_and_types_are_refused(api: Api, tenant: Tenant) -> None:
    for params in ({"after": "x1"}, {"types": "a b"}, {"limit": "0"}, {"follow": "maybe"}):
        assert error_of(api.tenant("GET", "/events", params=params)) == (400, "invalid_input")
    assert error_of(api.admin("GET", "/events", params={"after": "all.!!"})) == (
        400,
        "invalid_input",
    )
    assert error_of(api.admin("GET", "/events", params={"cluster": "nope"}))[0] == 404


def test_tenants_see_only_their_cluster_and_operators_filter_all(api: Api) -> None:
    first = make_tenant(api)
    first_key = api.tenant_key
    second = make_tenant(api)
    second_key = api.tenant_key
    made = second.create().json["container"]["id"]

    mine = all_tenant_events(api, key=first_key)
    assert {e["cluster_id"] for e in mine} == {first.cluster["id"]}
    assert made not in {e["resource"]["id"] for e in mine}
    theirs = all_tenant_events(api, key=second_key)
    assert made in {e["resource"]["id"] for e in theirs}

    everything = api.admin("GET", "/events", params={"limit": 100}).json
    logs = {e["cluster_id"] for e in everything["events"]}
    assert {first.cluster["id"], second.cluster["id"], None} <= logs  # None: the platform's
    host_events = [e for e in everything["events"] if e["type"] == "host.created"]
    assert {e["resource"]["id"] for e in host_events} == {first.host["id"], second.host["id"]}
    assert everything["cursor"].startswith("all.")
    assert api.admin("GET", "/events", params={"after": everything["cursor"]}).json["events"] == []

    by_resource = api.admin("GET", "/events", params={"resource": made}).json["events"]
    assert [e["type"] for e in by_resource] == ["workload.created"]
    actor = by_resource[0]["actor"]
    by_actor = api.admin("GET", "/events", params={"actor": actor}).json["events"]
    assert by_actor and {e["actor"] for e in by_actor} == {actor}
    assert {e["cluster_id"] for e in by_actor} == {second.cluster["id"]}
    one = api.admin("GET", "/events", params={"cluster": first.cluster["id"]}).json
    assert {e["cluster_id"] for e in one["events"]} == {first.cluster["id"]}


def test_secrets_never_enter_the_log(api: Api, tenant: Tenant) -> None:
    secret = api.make_key(tenant.cluster["id"], name="second")
    cid = tenant.create(environment={}).json["container"]["id"]
    everything = api.admin("GET", "/events", params={"limit": 100}).text
    assert secret not in everything
    assert cid in everything
    assert "key_hash" not in everything


def test_concurrent_changes_take_every_sequence_once(api: Api, tenant: Tenant, deps: Deps) -> None:
    cid = tenant.create().json["container"]["id"]

    def renew(n: int) -> int:
        return api.tenant("POST", f"/containers/{cid}/lease", {"lifetime": 1000 + n}).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(renew, range(24)))
    assert statuses == [200] * 24
    events = all_tenant_events(api)
    assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
    assert sum(e["type"] == "workload.renewed" for e in events) == 24
