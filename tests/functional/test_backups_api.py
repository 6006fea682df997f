"""The backup routes' answers to what a tenant may send, without a container engine:
containers are settled as running through the repository, as the worker does (the
archives themselves are tested against a real dockerd in test_backups_docker.py)."""

from __future__ import annotations

from typing import Any

import pytest

from services.deps import Deps
from shared.clock import new_id
from tests.fixtures.corral import Api, Tenant, error_of, make_tenant
from tests.functional.test_power_and_delete import settle


@pytest.fixture
def tenant(api: Api) -> Tenant:
    return make_tenant(api, backups=2)


def _running(tenant: Tenant, deps: Deps, **fields: Any) -> str:
    resp = tenant.create(**fields)
    assert resp.status_code == 202, resp.text
    container_id = str(resp.json["container"]["id"])
    settle(deps, tenant.cluster["id"], container_id, "running")
    return container_id


def test_a_container_without_backup_slots_gets_capacity_exceeded(
    tenant: Tenant, deps: Deps
) -> None:
    container_id = _running(tenant, deps)  # the egg's default: backups 0
    resp = tenant.api.tenant("POST", f"/containers/{container_id}/backups")
    assert error_of(resp) == (409, "capacity_exceeded")
    assert "backup slot" in resp.json["error"]["message"]
    assert tenant.api.tenant("GET", f"/containers/{container_id}/backups").json == []


def test_a_backup_is_an_operation_of_its_container(tenant: Tenant, deps: Deps) -> None:
    container_id = _running(tenant, deps, backups=1)
    path = f"/containers/{container_id}/backups"
    resp = tenant.api.tenant("POST", path, {"name": "before-upgrade"})
    assert resp.status_code == 202, resp.text
    backup, operation = resp.json["backup"], resp.json["operation"]
    assert backup["status"] == "creating" and backup["name"] == "before-upgrade"
    assert backup["size_bytes"] is None and backup["checksum"] is None
    assert operation["params"] == {"backup_id": backup["id"]}
    assert backup["last_operation"] == operation["id"]
    container = tenant.api.tenant("GET", f"/containers/{container_id}").json
    assert container["pending_operation"] == operation["id"]
    # one change at a time: the container refuses others while the backup runs
    for method, sub, body in [
        ("POST", "/backups", None),
        ("POST", "/power", {"signal": "stop"}),
        ("DELETE", "", None),
    ]:
        refused = tenant.api.tenant(method, f"/containers/{container_id}{sub}", body)
        assert error_of(refused) == (409, "action_not_allowed"), (method, sub)
    item = f"{path}/{backup['id']}"
    assert error_of(tenant.api.tenant("GET", f"{item}/download")) == (409, "action_not_allowed")
    assert tenant.api.tenant("GET", item).json == backup
    # the backup is the cluster's capacity: the container's slot is taken
    assert tenant.api.tenant("GET", "/capacity").json["used"]["backups"] == 1


def test_bad_bodies_are_invalid_input(tenant: Tenant, deps: Deps) -> None:
    container_id = _running(tenant, deps, backups=1)
    path = f"/containers/{container_id}/backups"
    for body in [
        {"name": ""},
        {"name": "x" * 65},
        {"name": 5},
        {"name": "a\u202eb"},
        {"size": 1},
        [],
        "text",
    ]:
        resp = tenant.api.tenant("POST", path, body)
        assert error_of(resp) == (400, "invalid_input"), body
    assert tenant.api.tenant("GET", path).json == []


def test_unknown_ids_are_not_found(tenant: Tenant, deps: Deps, api: Api) -> None:
    container_id = _running(tenant, deps, backups=1)
    base = f"/containers/{container_id}/backups"
    for method, path in [
        ("GET", f"/containers/{new_id()}/backups"),
        ("POST", f"/containers/{new_id()}/backups"),
        ("GET", "/containers/not-an-id/backups"),
        ("GET", f"{base}/{new_id()}"),
        ("GET", f"{base}/..%2F..%2Fetc"),
        ("POST", f"{base}/{new_id()}/restore"),
        ("DELETE", f"{base}/{new_id()}"),
        ("GET", f"{base}/{new_id()}/download"),
    ]:
        assert error_of(tenant.api.tenant(method, path)) == (404, "not_found"), (method, path)
    # another cluster's key sees none of it
    mine = tenant.api.tenant("POST", base).json["backup"]["id"]
    other_key = make_tenant(api, backups=2).api.tenant_key
    for method, path in [
        ("GET", base),
        ("GET", f"{base}/{mine}"),
        ("GET", f"{base}/{mine}/download"),
        ("DELETE", f"{base}/{mine}"),
        ("POST", base),
    ]:
        resp = api.tenant(method, path, key=other_key)
        assert error_of(resp) == (404, "not_found"), (method, path)


def test_a_backup_not_ready_cannot_be_restored_or_deleted(tenant: Tenant, deps: Deps) -> None:
    container_id = _running(tenant, deps, backups=1)
    path = f"/containers/{container_id}/backups"
    backup = tenant.api.tenant("POST", path).json["backup"]
    settle(deps, tenant.cluster["id"], container_id, "running")  # the backup stays creating
    for method, sub in [("POST", "/restore"), ("DELETE", "")]:
        resp = tenant.api.tenant(method, f"{path}/{backup['id']}{sub}")
        assert error_of(resp) == (409, "action_not_allowed"), method


def test_a_vm_backup_is_an_operation_of_its_vm(api: Api, deps: Deps) -> None:
    vm_egg = api.make_egg(name="vm", engine="qemu", image="debian-12")
    api.make_host(
        name="vm-host",
        driver="ssh",
        address="ssh://root@vm-host.invalid:22",
        capacity={"cpu_cores": 8, "ram_mb": 4096, "storage_mb": 100000},
        ssh_host_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyNotUsedHere0000000000000000",
        ssh_private_key="-----BEGIN OPENSSH PRIVATE KEY-----\nnot used\n",
    )
    cluster = api.make_cluster([vm_egg["id"]], backups=2)
    api.tenant_key = api.make_key(cluster["id"])
    created = api.tenant(
        "POST", "/containers", {"name": "vm", "egg_id": vm_egg["id"], "backups": 1}
    )
    assert created.status_code == 202, created.text
    vm_id = created.json["container"]["id"]
    settle(deps, cluster["id"], vm_id, "running")
    resp = api.tenant("POST", f"/containers/{vm_id}/backups")
    assert resp.status_code == 202, resp.text  # the disk over SSH: tests/integration/vm
    assert resp.json["operation"]["kind"] == "backup"
    assert resp.json["backup"]["status"] == "creating"
    vm = api.tenant("GET", f"/containers/{vm_id}").json
    assert vm["pending_operation"] == resp.json["operation"]["id"]


def test_the_egg_names_its_data_path(api: Api) -> None:
    egg = api.make_egg(name="game", data_path="/srv/game-data")
    assert egg["data_path"] == "/srv/game-data"
    assert api.make_egg(name="plain")["data_path"] == "/data"
    for path in ["/", "data", "/a/../b", "/a/./b", "/a b", "//", "/a;rm -rf", "/" + "a" * 300]:
        resp = api.admin(
            "POST",
            "/eggs",
            {"name": "bad", "image": "x", "data_path": path},
        )
        assert error_of(resp) == (400, "invalid_input"), path
