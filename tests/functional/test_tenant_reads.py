"""The tenant's read endpoints: cluster, capacity, eggs, containers, operations, wait."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Any

from handlers.app import create_app
from services.deps import Deps
from shared.clock import utc_now
from shared.states import WorkloadStatus
from tests.fixtures.corral import DEFAULT_PLAN, Api, Tenant, make_tenant
from tests.fixtures.openapi_check import CheckedClient

TOTALS = DEFAULT_PLAN
ZERO = dict.fromkeys(TOTALS, 0)


def settle(deps: Deps, cluster_id: str, container_id: str, *, publish: bool = False) -> None:
    """Record the container's pending operation as succeeded, as the worker does."""
    workload = deps.repo.workloads.get(cluster_id, container_id)
    assert workload.pending_op is not None
    op = deps.repo.operations.get(cluster_id, workload.pending_op)
    assert deps.repo.finish_operation(
        op, workload, status=WorkloadStatus.RUNNING, error=None, now=utc_now()
    )
    if publish:
        deps.jobs.notify_finished(op.id, "succeeded")


def test_cluster_shows_plan_totals_used_and_remaining(tenant: Tenant, api: Api) -> None:
    resp = api.tenant("GET", "/cluster")

    assert resp.status_code == 200, resp.text
    body = resp.json
    assert body["id"] == tenant.cluster["id"]
    assert body["status"] == "active"
    assert body["plan"]["name"] == "test"
    assert body["plan"]["limits"] == TOTALS
    assert body["totals"] == TOTALS
    assert body["used"] == ZERO
    assert body["remaining"] == TOTALS
    assert body["egg_ids"] == [tenant.egg["id"]]


def test_cluster_used_and_remaining_follow_reservations(tenant: Tenant, api: Api) -> None:
    created = tenant.create(
        cpu_cores=1.25, ram_mb=1024, storage_mb=5120, io=100, ports=1, databases=1, backups=0
    )
    assert created.status_code == 202, created.text

    body = api.tenant("GET", "/cluster").json
    used = {
        "cpu_cores": 1.25,
        "ram_mb": 1024,
        "storage_mb": 5120,
        "io": 100,
        "ports": 1,
        "databases": 1,
        "backups": 0,
        "containers": 1,
    }
    assert body["used"] == used
    assert body["remaining"] == {k: TOTALS[k] - used[k] for k in TOTALS}
    assert body["totals"] == TOTALS


def test_capacity_is_totals_and_used_only(tenant: Tenant, api: Api) -> None:
    tenant.create(ram_mb=128)

    resp = api.tenant("GET", "/capacity")

    assert resp.status_code == 200, resp.text
    assert set(resp.json) == {"totals", "used"}
    cluster = api.tenant("GET", "/cluster").json
    assert resp.json["totals"] == cluster["totals"] == TOTALS
    assert resp.json["used"] == cluster["used"]
    assert resp.json["used"]["ram_mb"] == 128
    assert resp.json["used"]["containers"] == 1


def test_eggs_lists_only_the_clusters_allowed_eggs(api: Api) -> None:
    allowed = api.make_egg(name="allowed")
    other = api.make_egg(name="other")
    also = api.make_egg(name="also", defaults={"cpu_cores": 1, "ram_mb": 256})
    cluster = api.make_cluster([allowed["id"], also["id"]])
    api.tenant_key = api.make_key(cluster["id"])

    resp = api.tenant("GET", "/eggs")

    assert resp.status_code == 200, resp.text
    by_id = {egg["id"]: egg for egg in resp.json}
    assert set(by_id) == {allowed["id"], also["id"]}
    assert other["id"] not in by_id
    egg = by_id[also["id"]]
    assert egg["name"] == "also"
    assert egg["engine"] == "docker"
    assert egg["defaults"]["cpu_cores"] == 1
    assert egg["defaults"]["ram_mb"] == 256
    assert egg["minimum"]["ram_mb"] == 16


def test_eggs_of_a_cluster_without_eggs_is_empty(api: Api) -> None:
    api.make_egg()
    cluster = api.make_cluster([])
    api.tenant_key = api.make_key(cluster["id"])

    resp = api.tenant("GET", "/eggs")

    assert resp.status_code == 200, resp.text
    assert resp.json == []


def test_containers_lists_every_container_of_the_cluster(tenant: Tenant, api: Api) -> None:
    assert api.tenant("GET", "/containers").json == []
    first = tenant.create(name="one").json["container"]
    second = tenant.create(name="two", ram_mb=128).json["container"]

    resp = api.tenant("GET", "/containers")

    assert resp.status_code == 200, resp.text
    listed = {c["id"]: c for c in resp.json}
    assert set(listed) == {first["id"], second["id"]}
    assert listed[second["id"]]["name"] == "two"
    assert listed[second["id"]]["resources"]["ram_mb"] == 128
    assert listed[first["id"]]["status"] == "provisioning"
    assert listed[first["id"]]["egg_id"] == tenant.egg["id"]


def test_get_container_shows_what_create_answered(tenant: Tenant, api: Api) -> None:
    created = tenant.create(name="web", ram_mb=96).json

    resp = api.tenant("GET", f"/containers/{created['container']['id']}")

    assert resp.status_code == 200, resp.text
    got = resp.json
    assert got["id"] == created["container"]["id"]
    assert got["name"] == "web"
    assert got["resources"] == created["container"]["resources"]
    assert got["status"] == "provisioning"
    assert got["engine"] == "docker"
    assert got["pending_operation"] == created["operation"]["id"]
    assert got["last_operation"] == created["operation"]["id"]


def test_trailing_slash_reaches_the_same_route(tenant: Tenant, api: Api) -> None:
    assert api.tenant("GET", "/cluster/").status_code == 200
    assert api.tenant("GET", "/containers/").json == []


def test_get_operation(tenant: Tenant, api: Api) -> None:
    created = tenant.create().json

    resp = api.tenant("GET", f"/operations/{created['operation']['id']}")

    assert resp.status_code == 200, resp.text
    op = resp.json
    assert op["id"] == created["operation"]["id"]
    assert op["kind"] == "provision"
    assert op["status"] == "queued"
    assert op["container_id"] == created["container"]["id"]
    assert op["finished_at"] is None
    assert op["error"] is None


def test_get_operation_after_it_finished(tenant: Tenant, api: Api, deps: Deps) -> None:
    created = tenant.create().json
    settle(deps, tenant.cluster["id"], created["container"]["id"])

    op = api.tenant("GET", f"/operations/{created['operation']['id']}").json

    assert op["status"] == "succeeded"
    assert op["finished_at"] is not None


def test_wait_returns_at_the_timeout_when_not_finished(tenant: Tenant, api: Api) -> None:
    op_id = tenant.create().json["operation"]["id"]

    started = time.monotonic()
    resp = api.tenant("GET", f"/operations/{op_id}/wait", params={"timeout": "0.2"})
    elapsed = time.monotonic() - started

    assert resp.status_code == 200, resp.text
    assert resp.json["status"] == "queued"
    assert resp.json["id"] == op_id
    assert 0.15 <= elapsed < 2.0


def test_wait_with_zero_timeout_answers_at_once(tenant: Tenant, api: Api) -> None:
    op_id = tenant.create().json["operation"]["id"]

    started = time.monotonic()
    resp = api.tenant("GET", f"/operations/{op_id}/wait", params={"timeout": "0"})

    assert resp.status_code == 200, resp.text
    assert resp.json["status"] == "queued"
    assert time.monotonic() - started < 1.0


def test_wait_on_a_finished_operation_answers_at_once(tenant: Tenant, api: Api, deps: Deps) -> None:
    created = tenant.create().json
    settle(deps, tenant.cluster["id"], created["container"]["id"])

    started = time.monotonic()
    resp = api.tenant(
        "GET", f"/operations/{created['operation']['id']}/wait", params={"timeout": 5}
    )

    assert resp.json["status"] == "succeeded"
    assert time.monotonic() - started < 1.0


def test_wait_wakes_when_the_operation_finishes(tenant: Tenant, api: Api, deps: Deps) -> None:
    created = tenant.create().json
    result: dict[str, Any] = {}

    def wait() -> None:
        started = time.monotonic()
        result["resp"] = api.tenant(
            "GET", f"/operations/{created['operation']['id']}/wait", params={"timeout": 5}
        )
        result["elapsed"] = time.monotonic() - started

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.3)
    settle(deps, tenant.cluster["id"], created["container"]["id"], publish=True)
    waiter.join(timeout=10)

    assert result["resp"].json["status"] == "succeeded"
    assert result["elapsed"] < 3.0


def test_wait_never_holds_longer_than_the_cap(tenant: Tenant, api: Api, deps: Deps) -> None:
    op_id = tenant.create().json["operation"]["id"]
    capped = replace(deps, settings=replace(deps.settings, wait_cap_seconds=0.3))
    client = CheckedClient(create_app(capped))

    started = time.monotonic()
    resp = client.simulate_get(
        f"/api/public/clusters/v1/operations/{op_id}/wait",
        params={"timeout": "3600"},
        headers={"Authorization": f"Bearer {api.tenant_key}"},
    )

    assert resp.status_code == 200, resp.text
    assert resp.json["status"] == "queued"
    assert time.monotonic() - started < 2.0


def test_wait_refuses_a_bad_timeout(tenant: Tenant, api: Api) -> None:
    op_id = tenant.create().json["operation"]["id"]
    for timeout in ("abc", "-1", "-0.5", "nan", "inf", "1e9", "3601", "", "0x10", "1,5"):
        resp = api.tenant("GET", f"/operations/{op_id}/wait", query_string=f"timeout={timeout}")
        assert resp.status_code == 400, (timeout, resp.text)
        assert resp.json["error"]["code"] == "invalid_input"
        assert "timeout" in resp.json["error"]["message"]


def test_a_second_cluster_starts_empty(api: Api) -> None:
    make_tenant(api)
    first_key = api.tenant_key
    api.tenant(
        "POST", "/containers", {"name": "x", "egg_id": api.tenant("GET", "/eggs").json[0]["id"]}
    )
    make_tenant(api)

    assert api.tenant("GET", "/containers").json == []
    assert api.tenant("GET", "/cluster").json["used"] == ZERO
    assert len(api.tenant("GET", "/containers", key=first_key).json) == 1
