"""Allocations through the API, against the real table: each host port is held by at
most one container, under any concurrency; a host's port range and public address are
the operator's to set, and refused when they would clash or strand a held port.

Placement happens in the API's own transaction, so no worker runs here: a create's
allocations exist (and are shown) as soon as it is accepted."""

from __future__ import annotations

from collections import Counter
from functools import partial
from typing import Any

import pytest

from services.deps import Deps
from tests.fixtures.corral import Api, Tenant, error_of
from tests.functional.test_concurrency import race, settle_all

PUBLIC_IP = "203.0.113.10"


def ports_tenant(api: Api, port_range: list[int], **plan: Any) -> Tenant:
    egg = api.make_egg(defaults={"cpu_cores": 0.1, "ram_mb": 16, "ports": 1})
    host = api.make_host(public_address=PUBLIC_IP, port_range=port_range)
    cluster = api.make_cluster([egg["id"]], **plan)
    api.tenant_key = api.make_key(cluster["id"])
    return Tenant(api, cluster, egg, host)


def held_ports(deps: Deps, host_id: str) -> set[int]:
    return deps.repo.ports.held(host_id)


def test_a_container_holds_distinct_ports_of_its_hosts_range(api: Api, deps: Deps) -> None:
    tenant = ports_tenant(api, [30000, 30009])
    resp = tenant.create(ports=3)
    assert resp.status_code == 202, resp.text
    allocations = resp.json["container"]["allocations"]
    assert [a["primary"] for a in allocations] == [True, False, False]
    ports = [a["port"] for a in allocations]
    assert len(set(ports)) == 3 and all(30000 <= p <= 30009 for p in ports)
    assert all(a["ip"] == PUBLIC_IP and a["container_port"] == a["port"] for a in allocations)
    shown = api.tenant("GET", f"/containers/{resp.json['container']['id']}").json
    assert shown["allocations"] == allocations
    assert held_ports(deps, tenant.host["id"]) == set(ports)
    host = api.admin("GET", f"/hosts/{tenant.host['id']}").json
    assert host["used"]["ports"] == 3 and host["public_address"] == PUBLIC_IP


def test_no_ports_no_allocations(api: Api, deps: Deps) -> None:
    tenant = ports_tenant(api, [30010, 30019])
    resp = tenant.create(ports=0)
    assert resp.status_code == 202, resp.text
    assert resp.json["container"]["allocations"] == []
    assert held_ports(deps, tenant.host["id"]) == set()


def test_a_full_range_says_so_and_delete_frees_the_port(api: Api, deps: Deps) -> None:
    tenant = ports_tenant(api, [30020, 30020])
    first = tenant.create(name="first")
    assert first.status_code == 202, first.text
    refused = tenant.create(name="second")
    assert error_of(refused) == (409, "no_host_available")
    assert "free port" in refused.json["error"]["message"]
    assert "30020-30020" in refused.json["error"]["message"]
    first_id = first.json["container"]["id"]
    settle_all(deps, tenant.cluster["id"])
    assert api.tenant("DELETE", f"/containers/{first_id}").status_code == 202
    settle_all(deps, tenant.cluster["id"])  # the delete job released it
    assert held_ports(deps, tenant.host["id"]) == set()
    again = tenant.create(name="second")
    assert again.status_code == 202, again.text
    assert [a["port"] for a in again.json["container"]["allocations"]] == [30020]


def test_concurrent_creates_never_share_a_port(api: Api, deps: Deps) -> None:
    """100 creates at once against a host with 20 free ports: exactly 20 hold ports,
    all distinct; every other one is refused for want of ports (a create that lost a
    race on the cluster's counters says `conflict`, and retried says why)."""
    tenant = ports_tenant(api, [30100, 30119], ports=1000, containers=1000, ram_mb=1_000_000)
    responses = race([partial(tenant.create, name=f"c{i}") for i in range(100)])
    codes: Counter[str] = Counter()
    for resp in responses:
        assert resp.status_code < 500, resp.text
        codes["accepted" if resp.status_code == 202 else error_of(resp)[1]] += 1
    assert codes["accepted"] == 20, codes
    assert set(codes) <= {"accepted", "no_host_available", "conflict"}, codes
    for _ in range(codes["conflict"]):
        assert error_of(tenant.create(name="late")) == (409, "no_host_available")
    containers = api.tenant("GET", "/containers").json
    ports = [a["port"] for c in containers for a in c["allocations"]]
    assert len(containers) == 20 and sorted(ports) == list(range(30100, 30120))
    assert held_ports(deps, tenant.host["id"]) == set(ports)
    host = api.admin("GET", f"/hosts/{tenant.host['id']}").json
    assert host["used"]["ports"] == 20 and host["workload_count"] == 20


def test_a_resize_of_ports_keeps_the_primary(api: Api, deps: Deps) -> None:
    tenant = ports_tenant(api, [30200, 30209])
    created = tenant.create(ports=1).json["container"]
    primary = created["allocations"][0]["port"]
    settle_all(deps, tenant.cluster["id"])
    grown = api.tenant("PATCH", f"/containers/{created['id']}", {"resources": {"ports": 3}})
    assert grown.status_code == 202, grown.text
    allocations = grown.json["container"]["allocations"]
    assert allocations[0] == {**created["allocations"][0]}
    assert len({a["port"] for a in allocations}) == 3
    assert grown.json["operation"]["params"]["recreate"] is True
    assert held_ports(deps, tenant.host["id"]) == {a["port"] for a in allocations}
    settle_all(deps, tenant.cluster["id"])
    shrunk = api.tenant("PATCH", f"/containers/{created['id']}", {"resources": {"ports": 1}})
    assert shrunk.status_code == 202, shrunk.text
    assert [a["port"] for a in shrunk.json["container"]["allocations"]] == [primary]
    assert held_ports(deps, tenant.host["id"]) == {primary}
    host = api.admin("GET", f"/hosts/{tenant.host['id']}").json
    assert host["used"]["ports"] == 1


def test_a_resize_past_the_range_is_refused_and_holds_nothing(api: Api, deps: Deps) -> None:
    tenant = ports_tenant(api, [30300, 30301])
    created = tenant.create(ports=1).json["container"]
    settle_all(deps, tenant.cluster["id"])
    resp = api.tenant("PATCH", f"/containers/{created['id']}", {"resources": {"ports": 3}})
    assert error_of(resp) == (409, "no_host_available")
    assert held_ports(deps, tenant.host["id"]) == {created["allocations"][0]["port"]}


def test_container_ports_map_to_the_allocations_in_order(api: Api) -> None:
    egg = api.make_egg(container_ports=[80, 443], defaults={"cpu_cores": 0.1, "ports": 2})
    assert egg["container_ports"] == [80, 443]
    host = api.make_host(port_range=[30400, 30409])
    cluster = api.make_cluster([egg["id"]])
    api.tenant_key = api.make_key(cluster["id"])
    resp = api.tenant("POST", "/containers", {"name": "fixed", "egg_id": egg["id"], "ports": 3})
    assert resp.status_code == 202, resp.text
    allocations = resp.json["container"]["allocations"]
    assert [a["container_port"] for a in allocations][:2] == [80, 443]
    assert allocations[2]["container_port"] == allocations[2]["port"]
    assert all(a["ip"] == "127.0.0.1" for a in allocations)  # no public_address: this machine
    assert host["port_range"] == [30400, 30409]


@pytest.mark.parametrize("container_ports", [[80, 80], [0], [70000], "80", [True]], ids=str)
def test_bad_container_ports_are_refused(api: Api, container_ports: Any) -> None:
    body = {"name": "x", "image": "busybox", "container_ports": container_ports}
    assert error_of(api.admin("POST", "/eggs", body)) == (400, "invalid_input")


def test_docker_hosts_get_the_default_range(api: Api) -> None:
    assert api.make_host()["port_range"] == [20000, 29999]


@pytest.mark.parametrize(
    "port_range",
    [[2000, 1999], [80, 90], [60000, 70000], [30000], [1, 2, 3], ["a", "b"], "30000-30010"],
    ids=str,
)
def test_bad_ranges_are_refused(api: Api, port_range: Any) -> None:
    host = api.make_host(port_range=[31000, 31009])
    assert error_of(api.make_host_raw(port_range=port_range)) == (400, "invalid_input")
    resp = api.admin("PATCH", f"/hosts/{host['id']}", {"port_range": port_range})
    assert error_of(resp) == (400, "invalid_input")
    assert api.admin("GET", f"/hosts/{host['id']}").json["port_range"] == [31000, 31009]


def test_overlapping_ranges_at_one_address_are_refused(api: Api) -> None:
    first = api.make_host(public_address="198.51.100.1", port_range=[32000, 32099])
    overlap = api.make_host_raw(public_address="198.51.100.1", port_range=[32099, 32199])
    assert error_of(overlap) == (409, "port_range_conflict")
    assert "32000-32099" in overlap.json["error"]["message"]
    # another address, or a range beside it, is fine
    api.make_host(public_address="198.51.100.2", port_range=[32000, 32099])
    second = api.make_host(public_address="198.51.100.1", port_range=[32100, 32199])
    moved = api.admin("PATCH", f"/hosts/{second['id']}", {"port_range": [32050, 32150]})
    assert error_of(moved) == (409, "port_range_conflict")
    readdressed = api.admin("PATCH", f"/hosts/{first['id']}", {"public_address": "198.51.100.3"})
    assert readdressed.status_code == 200, readdressed.text
    assert readdressed.json["public_address"] == "198.51.100.3"
    moved = api.admin("PATCH", f"/hosts/{second['id']}", {"port_range": [32050, 32150]})
    assert moved.status_code == 200 and moved.json["port_range"] == [32050, 32150]


def test_a_range_change_keeps_every_held_port(api: Api, deps: Deps) -> None:
    tenant = ports_tenant(api, [33000, 33000])
    created = tenant.create().json["container"]
    assert [a["port"] for a in created["allocations"]] == [33000]
    host_path = f"/hosts/{tenant.host['id']}"
    dropped = api.admin("PATCH", host_path, {"port_range": [33001, 33010]})
    assert error_of(dropped) == (409, "port_range_conflict")
    assert "33000" in dropped.json["error"]["message"]
    widened = api.admin("PATCH", host_path, {"port_range": [33000, 33010]})
    assert widened.status_code == 200 and widened.json["port_range"] == [33000, 33010]
    assert tenant.create(name="next").status_code == 202  # the wider range has room


def test_patch_host_refuses_nothing_and_unknown_fields(api: Api) -> None:
    host = api.make_host()
    assert error_of(api.admin("PATCH", f"/hosts/{host['id']}", {})) == (400, "invalid_input")
    bad = api.admin("PATCH", f"/hosts/{host['id']}", {"capacity": {"cpu_cores": 1}})
    assert error_of(bad) == (400, "invalid_input")
    bad = api.admin("PATCH", f"/hosts/{host['id']}", {"public_address": "no spaces allowed"})
    assert error_of(bad) == (400, "invalid_input")
    missing = api.admin("PATCH", "/hosts/nope", {"public_address": "192.0.2.1"})
    assert error_of(missing) == (404, "not_found")
