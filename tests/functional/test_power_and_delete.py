"""POST /containers/:id/power and DELETE /containers/:id, without a container engine:
`settle` records an operation's outcome through the repository as the worker does.
The same transitions run against a real dockerd in test_lifecycle.py."""

from __future__ import annotations

from typing import Any

import falcon.testing
import pytest

from services.deps import Deps
from shared.clock import utc_now
from shared.errors import Failure
from shared.states import WorkloadStatus
from tests.fixtures.corral import Api, Tenant, error_of, make_tenant

SIGNALS = ["start", "stop", "restart", "kill", "pause", "resume"]
# What the contract and the design allow: signal -> (from statuses, resulting status).
ALLOWED = {
    "start": ({"stopped", "error"}, "running"),
    "stop": ({"running", "paused"}, "stopped"),
    "restart": ({"running", "stopped"}, "running"),
    "kill": ({"running", "paused"}, "stopped"),
    "pause": ({"running"}, "paused"),
    "resume": ({"paused"}, "running"),
}


def settle(deps: Deps, cluster_id: str, container_id: str, status: str, **kw: Any) -> None:
    workload = deps.repo.workloads.get(cluster_id, container_id)
    assert workload.pending_op is not None
    op = deps.repo.operations.get(cluster_id, workload.pending_op)
    assert deps.repo.finish_operation(
        op, workload, status=WorkloadStatus(status), now=utc_now(), **({"error": None} | kw)
    )


def power(api: Api, cid: str, signal: str) -> falcon.testing.Result:
    return api.tenant("POST", f"/containers/{cid}/power", {"signal": signal})


@pytest.fixture
def running(tenant: Tenant, deps: Deps) -> str:
    cid = str(tenant.create().json["container"]["id"])
    settle(deps, tenant.cluster["id"], cid, "running")
    return cid


# -- power --------------------------------------------------------------------------


def test_every_signal_from_every_settled_status(tenant: Tenant, api: Api, deps: Deps) -> None:
    cluster_id = tenant.cluster["id"]
    for status in ("running", "stopped", "paused", "error"):
        cid = tenant.create(name=status, ram_mb=16, cpu_cores=0.1).json["container"]["id"]
        settle(deps, cluster_id, cid, status)
        for signal in SIGNALS:
            resp = power(api, cid, signal)
            sources, target = ALLOWED[signal]
            if status in sources:
                assert resp.status_code == 202, (status, signal, resp.text)
                op = resp.json["operation"]
                assert op["kind"] == "power"
                assert op["params"] == {"signal": signal, "target": target}
                assert resp.json["container"]["pending_operation"] == op["id"]
                assert resp.json["container"]["status"] == status  # until the worker acts
                settle(deps, cluster_id, cid, status)
            else:
                assert error_of(resp) == (409, "action_not_allowed"), (status, signal)
                assert status in resp.json["error"]["message"]
                got = api.tenant("GET", f"/containers/{cid}").json
                assert got["pending_operation"] is None, (status, signal)


def test_no_signal_while_provisioning(tenant: Tenant, api: Api) -> None:
    cid = tenant.create().json["container"]["id"]
    for signal in SIGNALS:
        assert error_of(power(api, cid, signal)) == (409, "action_not_allowed"), signal


def test_no_signal_while_another_operation_is_in_flight(api: Api, running: str) -> None:
    first = power(api, running, "stop")
    assert first.status_code == 202, first.text

    for signal in SIGNALS:
        resp = power(api, running, signal)
        assert error_of(resp) == (409, "action_not_allowed"), signal
        assert first.json["operation"]["id"] in resp.json["error"]["message"]
    assert error_of(api.tenant("DELETE", f"/containers/{running}")) == (409, "action_not_allowed")
    patch = api.tenant("PATCH", f"/containers/{running}", {"name": "x"})
    assert error_of(patch) == (409, "action_not_allowed")


def test_power_operation_can_be_read_back(api: Api, running: str) -> None:
    op = power(api, running, "restart").json["operation"]

    got = api.tenant("GET", f"/operations/{op['id']}")

    assert got.status_code == 200, got.text
    assert got.json["kind"] == "power"
    assert got.json["container_id"] == running
    assert got.json["params"] == {"signal": "restart", "target": "running"}
    assert got.json["status"] == "queued"


def test_invalid_power_bodies(api: Api, running: str) -> None:
    cases: list[tuple[str, Any]] = [
        ("unknown signal", {"signal": "hibernate"}),
        ("upper case", {"signal": "START"}),
        ("padded", {"signal": " start"}),
        ("empty signal", {"signal": ""}),
        ("null signal", {"signal": None}),
        ("number", {"signal": 1}),
        ("list", {"signal": ["start"]}),
        ("missing", {}),
        ("extra field", {"signal": "stop", "force": True}),
        ("not an object", ["stop"]),
        ("bare string", "stop"),
    ]
    for case, body in cases:
        resp = api.tenant("POST", f"/containers/{running}/power", body)
        assert error_of(resp) == (400, "invalid_input"), (case, resp.text)
    got = api.tenant("GET", f"/containers/{running}").json
    assert got["pending_operation"] is None
    assert got["status"] == "running"


def test_power_without_a_body(api: Api, running: str) -> None:
    resp = api.client.simulate_post(
        f"/api/public/clusters/v1/containers/{running}/power",
        headers={"Authorization": f"Bearer {api.tenant_key}"},
    )

    assert error_of(resp) == (400, "invalid_input")


def test_a_failed_operation_is_shown_with_its_error(
    tenant: Tenant, api: Api, deps: Deps, running: str
) -> None:
    op_id = power(api, running, "stop").json["operation"]["id"]
    settle(
        deps,
        tenant.cluster["id"],
        running,
        "error",
        error=Failure("host_error", "The engine said no."),
    )

    op = api.tenant("GET", f"/operations/{op_id}").json
    container = api.tenant("GET", f"/containers/{running}").json

    assert op["status"] == "failed"
    assert op["error"] == "The engine said no."
    assert container["status"] == "error"
    assert container["error"] == "The engine said no."
    assert power(api, running, "start").status_code == 202  # error -> start is allowed


# -- delete -------------------------------------------------------------------------


def test_delete_answers_202_and_marks_the_container_deleting(
    tenant: Tenant, api: Api, running: str
) -> None:
    used = api.tenant("GET", "/cluster").json["used"]

    resp = api.tenant("DELETE", f"/containers/{running}")

    assert resp.status_code == 202, resp.text
    assert resp.json["container"]["status"] == "deleting"
    assert resp.json["operation"]["kind"] == "delete"
    assert resp.json["operation"]["params"] == {"from": "running"}
    assert api.tenant("GET", f"/containers/{running}").json["status"] == "deleting"
    # Resources stay reserved until the host has let go of them.
    assert api.tenant("GET", "/cluster").json["used"] == used
    assert [c["id"] for c in api.tenant("GET", "/containers").json] == [running]


def test_deleted_container_frees_its_resources_and_leaves_the_list(
    tenant: Tenant, api: Api, deps: Deps, running: str
) -> None:
    other = tenant.create(name="other", ram_mb=32).json["container"]["id"]
    assert api.tenant("DELETE", f"/containers/{running}").status_code == 202

    settle(deps, tenant.cluster["id"], running, "deleted", release=True)

    assert [c["id"] for c in api.tenant("GET", "/containers").json] == [other]
    used = api.tenant("GET", "/cluster").json["used"]
    assert used["ram_mb"] == 32
    assert used["containers"] == 1
    host = api.admin("GET", f"/hosts/{tenant.host['id']}").json
    assert host["used"]["ram_mb"] == 32
    assert host["workload_count"] == 1
    for method, path, body in [
        ("PATCH", f"/containers/{running}", {"name": "x"}),
        ("DELETE", f"/containers/{running}", None),
        ("POST", f"/containers/{running}/power", {"signal": "start"}),
    ]:
        assert error_of(api.tenant(method, path, body)) == (404, "not_found"), method


def test_a_deleted_container_stays_readable_by_id(
    tenant: Tenant, api: Api, deps: Deps, running: str
) -> None:
    """Its final status stays readable (for the retention period), so a client that
    polls it sees `deleted`; every change to it is not_found."""
    assert api.tenant("DELETE", f"/containers/{running}").status_code == 202
    settle(deps, tenant.cluster["id"], running, "deleted", release=True)

    resp = api.tenant("GET", f"/containers/{running}")
    assert resp.status_code == 200 and resp.json["status"] == "deleted"


def test_deleting_frees_a_container_slot(api: Api, deps: Deps) -> None:
    tenant = make_tenant(api, containers=1)
    cid = tenant.create().json["container"]["id"]
    settle(deps, tenant.cluster["id"], cid, "running")
    assert error_of(tenant.create()) == (409, "container_limit_reached")
    assert api.tenant("DELETE", f"/containers/{cid}").status_code == 202
    assert error_of(tenant.create()) == (409, "container_limit_reached")  # still deleting

    settle(deps, tenant.cluster["id"], cid, "deleted", release=True)

    assert tenant.create().status_code == 202


def test_delete_from_every_settled_status(tenant: Tenant, api: Api, deps: Deps) -> None:
    for status in ("running", "stopped", "paused", "error"):
        cid = tenant.create(name=status, ram_mb=16, cpu_cores=0.1).json["container"]["id"]
        settle(deps, tenant.cluster["id"], cid, status)

        resp = api.tenant("DELETE", f"/containers/{cid}")

        assert resp.status_code == 202, (status, resp.text)
        assert resp.json["operation"]["params"] == {"from": status}
        assert resp.json["container"]["status"] == "deleting"


def test_delete_while_provisioning_waits_for_the_provisioning(tenant: Tenant, api: Api) -> None:
    cid = tenant.create().json["container"]["id"]

    resp = api.tenant("DELETE", f"/containers/{cid}")

    assert error_of(resp) == (409, "action_not_allowed")
    assert api.tenant("GET", f"/containers/{cid}").json["status"] == "provisioning"


def test_a_delete_that_failed_leaves_the_container_in_error(
    tenant: Tenant, api: Api, deps: Deps, running: str
) -> None:
    used = api.tenant("GET", "/cluster").json["used"]
    assert api.tenant("DELETE", f"/containers/{running}").status_code == 202
    settle(
        deps,
        tenant.cluster["id"],
        running,
        "error",
        error=Failure("host_unreachable", "host unreachable"),
    )

    container = api.tenant("GET", f"/containers/{running}").json

    assert container["status"] == "error"
    assert api.tenant("GET", "/cluster").json["used"] == used
    assert api.tenant("DELETE", f"/containers/{running}").status_code == 202  # retry


# -- what a change costs the table ----------------------------------------------------


def test_each_change_reads_what_it_needs_in_as_few_round_trips_as_it_can(
    api: Api, tenant: Tenant, deps: Deps, running: str
) -> None:
    """A change reads its workload and its cluster in one BatchGetItem; an update then
    the egg and the host in another; then its transaction (its event numbers come
    from Redis): never an item at a time."""
    cluster_id, stats = tenant.cluster["id"], deps.repo.db.stats
    assert api.tenant("GET", f"/containers/{running}").status_code == 200  # the key cached
    writes = {"transact_write_items": 1}

    stats.reset()
    patch = {"name": "renamed", "resources": {"ram_mb": 96}}
    assert api.tenant("PATCH", f"/containers/{running}", patch).status_code == 202
    assert dict(stats.calls) == {"batch_get_item": 2, **writes}
    settle(deps, cluster_id, running, "running")

    stats.reset()
    assert power(api, running, "stop").status_code == 202
    assert dict(stats.calls) == {"batch_get_item": 1, **writes}
    settle(deps, cluster_id, running, "stopped")

    stats.reset()
    assert api.tenant("DELETE", f"/containers/{running}").status_code == 202
    assert dict(stats.calls) == {"batch_get_item": 1, **writes}
