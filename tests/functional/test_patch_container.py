"""PATCH /containers/:id: rename, partial resize, egg switch, and what refuses them.

A container takes changes once its provisioning has finished; `settle` records the
pending operation's outcome through the repository exactly as the worker does, so
these tests need no container engine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import falcon.testing
import pytest

from services.deps import Deps
from shared.clock import utc_now
from shared.states import WorkloadStatus
from tests.fixtures.corral import Api, Tenant, error_of, make_tenant


def settle(deps: Deps, cluster_id: str, container_id: str, status: str = "running") -> None:
    workload = deps.repo.workloads.get(cluster_id, container_id)
    assert workload.pending_op is not None
    op = deps.repo.operations.get(cluster_id, workload.pending_op)
    assert deps.repo.finish_operation(
        op, workload, status=WorkloadStatus(status), error=None, now=utc_now()
    )


@dataclass
class Setup:
    api: Api
    deps: Deps
    tenant: Tenant
    other_egg: dict[str, Any]  # allowed, docker, a larger minimum
    vm_egg: dict[str, Any]  # allowed, qemu
    outside_egg: dict[str, Any]  # docker, not allowed
    container_id: str

    @property
    def cluster_id(self) -> str:
        return str(self.tenant.cluster["id"])

    def patch(self, body: Any, container_id: str | None = None) -> falcon.testing.Result:
        return self.api.tenant("PATCH", f"/containers/{container_id or self.container_id}", body)

    def container(self, container_id: str | None = None) -> dict[str, Any]:
        got = self.api.tenant("GET", f"/containers/{container_id or self.container_id}")
        assert got.status_code == 200, got.text
        return dict(got.json)

    def used(self) -> dict[str, Any]:
        return dict(self.api.tenant("GET", "/cluster").json["used"])

    def host_used(self) -> dict[str, Any]:
        return dict(self.api.admin("GET", f"/hosts/{self.tenant.host['id']}").json["used"])

    def settle(self, container_id: str | None = None, status: str = "running") -> None:
        settle(self.deps, self.cluster_id, container_id or self.container_id, status)


@pytest.fixture
def setup(api: Api, deps: Deps) -> Setup:
    egg = api.make_egg()
    other = api.make_egg(
        name="bigger",
        image="corral/other:latest",
        minimum={"cpu_cores": 0.25, "ram_mb": 128},
        defaults={"cpu_cores": 1, "ram_mb": 256},
    )
    vm = api.make_egg(name="vm", engine="qemu", image="debian-12")
    outside = api.make_egg(name="outside")
    host = api.make_host()
    cluster = api.make_cluster([egg["id"], other["id"], vm["id"]])
    api.tenant_key = api.make_key(cluster["id"])
    tenant = Tenant(api, cluster, egg, host)
    created = tenant.create(name="web", ram_mb=64, cpu_cores=0.5)
    assert created.status_code == 202, created.text
    result = Setup(api, deps, tenant, other, vm, outside, created.json["container"]["id"])
    result.settle()
    return result


def test_rename_only_changes_the_name(setup: Setup) -> None:
    before, used = setup.container(), setup.used()

    resp = setup.patch({"name": "web-2"})

    assert resp.status_code == 202, resp.text
    container, operation = resp.json["container"], resp.json["operation"]
    assert container["name"] == "web-2"
    assert container["resources"] == before["resources"]
    assert container["egg_id"] == before["egg_id"]
    assert container["pending_operation"] == operation["id"]
    assert operation["kind"] == "update"
    assert operation["status"] == "queued"
    assert operation["params"] == {"name": "web-2"}
    after = setup.container()
    assert after["name"] == "web-2"
    assert after["resources"] == before["resources"]
    assert after["status"] == "running"
    assert setup.used() == used


def test_partial_resize_keeps_the_other_values(setup: Setup) -> None:
    before, used, host_used = setup.container(), setup.used(), setup.host_used()

    resp = setup.patch({"resources": {"ram_mb": 192}})

    assert resp.status_code == 202, resp.text
    expected = before["resources"] | {"ram_mb": 192}
    assert resp.json["container"]["resources"] == expected
    assert resp.json["operation"]["params"]["resources"] == expected
    assert setup.container()["resources"] == expected
    assert setup.container()["name"] == "web"
    assert setup.used() == used | {"ram_mb": used["ram_mb"] + 128}
    assert setup.host_used() == host_used | {"ram_mb": host_used["ram_mb"] + 128}


def test_counters_move_by_the_delta_both_ways(setup: Setup) -> None:
    used = setup.used()

    grow = setup.patch({"resources": {"cpu_cores": 1.5, "ports": 3, "storage_mb": 1000}})
    assert grow.status_code == 202, grow.text
    grown = setup.used()
    assert grown["cpu_cores"] == used["cpu_cores"] + 1
    assert grown["ports"] == used["ports"] + 3
    assert grown["storage_mb"] == used["storage_mb"] - 256 + 1000
    assert grown["ram_mb"] == used["ram_mb"]
    assert grown["containers"] == used["containers"] == 1
    setup.settle()

    shrink = setup.patch({"resources": {"cpu_cores": 0.25, "ports": 0, "storage_mb": 0}})
    assert shrink.status_code == 202, shrink.text
    shrunk = setup.used()
    assert shrunk["cpu_cores"] == 0.25
    assert shrunk["ports"] == 0
    assert shrunk["storage_mb"] == 0
    assert setup.host_used()["cpu_cores"] == 0.25


def test_grow_and_shrink_at_once_needs_room_only_for_the_growth(api: Api, deps: Deps) -> None:
    tenant = make_tenant(api, cpu_cores=1, ram_mb=128)
    cid = tenant.create(cpu_cores=0.5, ram_mb=128).json["container"]["id"]
    settle(deps, tenant.cluster["id"], cid)

    resp = api.tenant("PATCH", f"/containers/{cid}", {"resources": {"cpu_cores": 1, "ram_mb": 64}})

    assert resp.status_code == 202, resp.text
    used = api.tenant("GET", "/cluster").json["used"]
    assert used["cpu_cores"] == 1
    assert used["ram_mb"] == 64


def test_rename_and_resize_together(setup: Setup) -> None:
    resp = setup.patch({"name": "api", "resources": {"ram_mb": 96, "io": 200}})

    assert resp.status_code == 202, resp.text
    after = setup.container()
    assert after["name"] == "api"
    assert after["resources"]["ram_mb"] == 96
    assert after["resources"]["io"] == 200
    assert after["resources"]["cpu_cores"] == 0.5
    assert resp.json["operation"]["params"]["name"] == "api"


def test_switch_to_an_allowed_egg_of_the_same_engine(setup: Setup) -> None:
    resp = setup.patch({"egg_id": setup.other_egg["id"], "resources": {"ram_mb": 256}})

    assert resp.status_code == 202, resp.text
    assert resp.json["container"]["egg_id"] == setup.other_egg["id"]
    assert resp.json["operation"]["params"]["egg_id"] == setup.other_egg["id"]
    assert resp.json["operation"]["params"]["recreate"] is True
    after = setup.container()
    assert after["egg_id"] == setup.other_egg["id"]
    assert after["resources"]["ram_mb"] == 256


def test_switch_egg_keeps_resources_that_meet_the_new_minimum(setup: Setup) -> None:
    assert setup.patch({"resources": {"ram_mb": 128}}).status_code == 202
    setup.settle()

    resp = setup.patch({"egg_id": setup.other_egg["id"]})

    assert resp.status_code == 202, resp.text
    assert setup.container()["resources"]["ram_mb"] == 128


def test_switch_to_an_egg_whose_minimum_the_container_misses(setup: Setup) -> None:
    before, used = setup.container(), setup.used()

    resp = setup.patch({"egg_id": setup.other_egg["id"]})  # 64 MB < its 128 MB minimum

    assert error_of(resp) == (400, "below_minimum")
    assert "ram_mb" in resp.json["error"]["message"]
    assert setup.container() == before
    assert setup.used() == used


def test_switch_to_an_egg_outside_the_whitelist(setup: Setup) -> None:
    before = setup.container()
    for egg_id in (setup.outside_egg["id"], "0c7d8a4e-0000-4000-8000-000000000000", "nope"):
        resp = setup.patch({"egg_id": egg_id, "name": "renamed"})
        assert error_of(resp) == (400, "egg_not_allowed"), (egg_id, resp.text)
    assert setup.container() == before


def test_switch_to_an_egg_of_another_engine_is_refused(setup: Setup) -> None:
    before = setup.container()

    resp = setup.patch({"egg_id": setup.vm_egg["id"]})

    assert error_of(resp) == (400, "invalid_input")
    assert "qemu" in resp.json["error"]["message"]
    assert setup.container() == before


def test_growing_past_the_pool_changes_nothing(setup: Setup) -> None:
    before, used, host_used = setup.container(), setup.used(), setup.host_used()

    for resources in (
        {"ram_mb": 4097},
        {"ram_mb": 16_000_000},
        {"cpu_cores": 4.01},
        {"ports": 11},
        {"ram_mb": 128, "databases": 3},
    ):
        resp = setup.patch({"name": "renamed", "resources": resources})
        assert error_of(resp) == (409, "capacity_exceeded"), (resources, resp.text)

    assert setup.container() == before
    assert setup.used() == used
    assert setup.host_used() == host_used


def test_growing_into_what_another_container_holds_is_refused(api: Api, deps: Deps) -> None:
    tenant = make_tenant(api, ram_mb=256)
    first = tenant.create(name="a", ram_mb=128).json["container"]["id"]
    second = tenant.create(name="b", ram_mb=64).json["container"]["id"]
    for cid in (first, second):
        settle(deps, tenant.cluster["id"], cid)

    refused = api.tenant("PATCH", f"/containers/{second}", {"resources": {"ram_mb": 129}})
    accepted = api.tenant("PATCH", f"/containers/{second}", {"resources": {"ram_mb": 128}})

    assert error_of(refused) == (409, "capacity_exceeded")
    assert accepted.status_code == 202, accepted.text
    assert api.tenant("GET", "/cluster").json["remaining"]["ram_mb"] == 0


def test_resize_below_a_minimum_is_refused(setup: Setup) -> None:
    before, used = setup.container(), setup.used()
    for resources in (
        {"ram_mb": 15},
        {"ram_mb": 0},
        {"cpu_cores": 0},
        {"cpu_cores": -1},
        {"storage_mb": -1},
        {"io": -10},
        {"ports": -1},
    ):
        resp = setup.patch({"resources": resources})
        assert error_of(resp) == (400, "below_minimum"), (resources, resp.text)
    assert setup.container() == before
    assert setup.used() == used


def test_invalid_patch_bodies_are_refused(setup: Setup) -> None:
    before = setup.container()
    cases: list[tuple[str, Any]] = [
        ("empty object", {}),
        ("only nulls", {"name": None, "egg_id": None, "resources": None}),
        ("empty resources", {"resources": {}}),
        ("resources of nulls", {"resources": {"ram_mb": None}}),
        ("same name", {"name": "web"}),
        ("same resources", {"resources": {"ram_mb": 64, "cpu_cores": 0.5}}),
        ("same egg", {"egg_id": setup.tenant.egg["id"]}),
        ("unknown field", {"name": "x", "status": "running"}),
        ("unknown resource", {"resources": {"gpu": 1}}),
        ("flat resources", {"ram_mb": 128}),
        ("string resources", {"resources": "big"}),
        ("string ram", {"resources": {"ram_mb": "128"}}),
        ("boolean cpu", {"resources": {"cpu_cores": True}}),
        ("three decimals", {"resources": {"cpu_cores": 0.333}}),
        ("long name", {"name": "n" * 65}),
        ("blank name", {"name": " "}),
        ("control char", {"name": "a\tb"}),
        ("array", [{"name": "x"}]),
    ]
    for case, body in cases:
        resp = setup.patch(body)
        assert error_of(resp) == (400, "invalid_input"), (case, resp.text)
    assert setup.container() == before


def test_patch_refused_while_an_operation_is_in_flight(setup: Setup) -> None:
    first = setup.patch({"name": "one"})
    assert first.status_code == 202, first.text

    for body in ({"name": "two"}, {"resources": {"ram_mb": 128}}):
        resp = setup.patch(body)
        assert error_of(resp) == (409, "action_not_allowed"), resp.text
        assert first.json["operation"]["id"] in resp.json["error"]["message"]
    assert setup.container()["name"] == "one"

    setup.settle()
    assert setup.patch({"name": "two"}).status_code == 202


def test_patch_refused_while_provisioning(api: Api, tenant: Tenant) -> None:
    cid = tenant.create().json["container"]["id"]

    resp = api.tenant("PATCH", f"/containers/{cid}", {"name": "x"})

    assert error_of(resp) == (409, "action_not_allowed")


def test_patch_allowed_from_every_settled_status(setup: Setup) -> None:
    for ram, status in ((80, "stopped"), (96, "paused"), (112, "error")):
        assert setup.patch({"name": status}).status_code == 202
        setup.settle(status=status)

        resp = setup.patch({"resources": {"ram_mb": ram}})

        assert resp.status_code == 202, (status, resp.text)
        assert setup.container()["status"] == status
        assert setup.container()["resources"]["ram_mb"] == ram
        setup.settle(status=status)


def test_patch_of_a_deleted_container_is_not_found(setup: Setup) -> None:
    assert setup.api.tenant("DELETE", f"/containers/{setup.container_id}").status_code == 202
    workload = setup.deps.repo.workloads.get(setup.cluster_id, setup.container_id)
    assert workload.pending_op is not None
    op = setup.deps.repo.operations.get(setup.cluster_id, workload.pending_op)
    setup.deps.repo.finish_operation(
        op, workload, status=WorkloadStatus.DELETED, error=None, now=utc_now(), release=True
    )

    resp = setup.patch({"name": "ghost"})

    assert error_of(resp) == (404, "not_found")


@pytest.fixture
def egg_deleted(setup: Setup) -> Setup:
    """The operator takes the container's egg off the allow-list and deletes it."""
    api = setup.api
    allowed = [setup.other_egg["id"], setup.vm_egg["id"]]
    resp = api.admin("PATCH", f"/clusters/{setup.cluster_id}", {"egg_ids": allowed})
    assert resp.status_code == 200, resp.text
    resp = api.admin("DELETE", f"/eggs/{setup.tenant.egg['id']}")
    assert resp.status_code == 204, resp.text
    return setup


def test_rename_after_the_containers_egg_was_deleted(egg_deleted: Setup) -> None:
    resp = egg_deleted.patch({"name": "renamed"})

    assert resp.status_code == 202, resp.text


def test_switch_away_from_a_deleted_egg(egg_deleted: Setup) -> None:
    resp = egg_deleted.patch({"egg_id": egg_deleted.other_egg["id"], "resources": {"ram_mb": 128}})

    assert resp.status_code == 202, resp.text
    assert egg_deleted.container()["egg_id"] == egg_deleted.other_egg["id"]


def test_a_resize_never_goes_below_zero_after_the_egg_was_deleted(egg_deleted: Setup) -> None:
    # Issue 12, defect 1: without the egg, only upper bounds were checked; this PATCH
    # answered 202 and left used.cpu_cores = -100, used.ram_mb = -100000.
    before, used, host_used = egg_deleted.container(), egg_deleted.used(), egg_deleted.host_used()
    for resources in (
        {"cpu_cores": -100, "ram_mb": -100000},
        {"storage_mb": -1},
        {"ports": -1},
        {"cpu_cores": 0},
        {"ram_mb": 5},
    ):
        resp = egg_deleted.patch({"resources": resources})
        assert error_of(resp) == (400, "below_minimum"), (resources, resp.text)
    assert egg_deleted.container() == before
    assert egg_deleted.used() == used
    assert egg_deleted.host_used() == host_used

    at_the_floor = egg_deleted.patch({"resources": {"cpu_cores": 0.01, "ram_mb": 6}})

    assert at_the_floor.status_code == 202, at_the_floor.text
