"""Environments and VMs through the API, against real Redis and DynamoDB Local:
validation, all-or-nothing placement and counters. No host is contacted (no job runs here); the
integration tests in tests/integration/vm/test_envs_api.py run the VMs for real."""

from __future__ import annotations

from typing import Any

import pytest

from services.deps import Deps
from shared.clock import utc_now
from shared.env_requests import MAX_VMS_PER_ENV
from shared.states import WorkloadStatus
from tests.fixtures.corral import Api

KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq0Cw9bmL6J8fM3p4rWn2M7Q0dD4xP6y1vU8n9s2kLr alice@laptop"
)
SMALL = {"image": "base.qcow2", "cpu": 1, "mem": 256, "disk": 1024}


def _vm_host(api: Api, name: str, ram_mb: int = 1024, **extra: Any) -> dict[str, Any]:
    return api.make_host(
        name=name,
        driver="ssh",
        address=f"ssh://root@{name}.invalid:22",
        capacity={"cpu_cores": 8, "ram_mb": ram_mb, "storage_mb": 100000},
        ssh_host_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyNotUsedHere0000000000000000",
        ssh_private_key="-----BEGIN OPENSSH PRIVATE KEY-----\nnot used\n",
        **extra,
    )


@pytest.fixture
def lab(api: Api) -> dict[str, Any]:
    vm_egg = api.make_egg(
        name="tiny-vm",
        engine="qemu",
        image="base.qcow2",
        command=None,
        minimum={"cpu_cores": 1, "ram_mb": 64, "storage_mb": 64},
        defaults={"cpu_cores": 1, "ram_mb": 128, "storage_mb": 1024},
        vm={"kernel": "vmlinuz", "initrd": "initramfs.gz", "kernel_args": "console=ttyS0"},
    )
    box = api.make_egg()
    hosts = [_vm_host(api, "vm-a"), _vm_host(api, "vm-b")]
    cluster = api.make_cluster([vm_egg["id"], box["id"]], ram_mb=8192, containers=10)
    api.tenant_key = api.make_key(cluster["id"])
    return {"egg": vm_egg, "box": box, "hosts": hosts, "cluster": cluster}


def _env(lab: dict[str, Any], env_id: str = "dev", **fields: Any) -> dict[str, Any]:
    return {
        "id": env_id,
        "cluster_id": lab["cluster"]["id"],
        "owner": "alice",
        "ssh_keys": [KEY],
        "vms": [SMALL, SMALL | {"ports": [80, 443]}],
    } | fields


def _used(api: Api, lab: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    cluster = api.admin("GET", f"/clusters/{lab['cluster']['id']}").json["used"]
    hosts = [api.admin("GET", f"/hosts/{h['id']}").json["used"] for h in lab["hosts"]]
    return cluster, hosts


def test_create_writes_every_vm_and_counts_them(api: Api, deps: Deps, lab: dict[str, Any]) -> None:
    resp = api.admin("POST", "/envs", _env(lab))
    assert resp.status_code == 202, resp.text
    env = resp.json
    assert env["id"] == "dev" and env["status"] == "provisioning" and env["owner"] == "alice"
    assert [vm["name"] for vm in env["vms"]] == ["dev-0", "dev-1"]
    assert len(env["operations"]) == 2
    assert {op["kind"] for op in env["operations"]} == {"provision"}
    second = env["vms"][1]
    assert second["engine"] == "qemu" and second["env_id"] == "dev"
    assert (second["cpu"], second["mem"], second["disk"]) == (1, 256, 1024)
    assert second["vm"]["ports"] == [22, 80, 443]
    assert second["vm"]["ssh_keys"] == [KEY]
    assert second["expires_at"] == env["expires_at"]
    assert second["restart_needed"] is False

    cluster, hosts = _used(api, lab)
    assert cluster["ram_mb"] == 512 and cluster["containers"] == 2
    assert cluster["ports"] == 1 + 3  # forwarded ports, 22 included
    assert sum(h["ram_mb"] for h in hosts) == 512

    got = api.admin("GET", "/envs/dev").json
    assert [vm["id"] for vm in got["vms"]] == [vm["id"] for vm in env["vms"]]
    vm = api.admin("GET", f"/vms/{second['id']}")
    assert vm.status_code == 200 and vm.json["id"] == second["id"]
    assert api.admin("GET", "/envs").json[0]["id"] == "dev"
    # The VMs are the cluster's containers, for its tenant too.
    listed = api.tenant("GET", "/containers").json
    assert {c["id"] for c in listed} == {vm["id"] for vm in env["vms"]}


def test_second_vm_that_fits_nowhere_writes_nothing(
    api: Api, deps: Deps, lab: dict[str, Any]
) -> None:
    before = _used(api, lab)
    body = _env(lab, vms=[SMALL, SMALL | {"mem": 2048}])
    resp = api.admin("POST", "/envs", body)
    assert resp.status_code == 409, resp.text
    assert resp.json["error"]["code"] == "no_host_available"
    assert "vms[1]" in resp.json["error"]["message"]
    assert "capacity" in resp.json["error"]["message"]
    assert _used(api, lab) == before
    assert deps.repo.workloads.in_cluster(lab["cluster"]["id"]) == []
    assert api.admin("GET", "/envs/dev").status_code == 404


def test_vms_that_fit_only_together_on_separate_hosts_are_spread(
    api: Api, deps: Deps, lab: dict[str, Any]
) -> None:
    # 700 + 700 MiB: never both on one 1024 MiB host, so each host takes one.
    body = _env(lab, vms=[SMALL | {"mem": 700}, SMALL | {"mem": 700}])
    resp = api.admin("POST", "/envs", body)
    assert resp.status_code == 202, resp.text
    assert len({vm["host_id"] for vm in resp.json["vms"]}) == 2
    # A third 700 MiB VM finds no host: nothing of that env is written.
    again = api.admin("POST", "/envs", _env(lab, "more", vms=[SMALL | {"mem": 700}]))
    assert again.status_code == 409 and "vms[0]" in again.json["error"]["message"]
    assert len(deps.repo.workloads.in_cluster(lab["cluster"]["id"])) == 2


def test_plan_limits_refuse_the_whole_env(api: Api, deps: Deps, lab: dict[str, Any]) -> None:
    too_many = _env(lab, vms=[SMALL] * 11)
    resp = api.admin("POST", "/envs", too_many)
    assert resp.json["error"]["code"] == "container_limit_reached", resp.text
    too_big = _env(lab, vms=[SMALL | {"mem": 1000}] * 9)
    resp = api.admin("POST", "/envs", too_big)
    assert resp.json["error"]["code"] == "capacity_exceeded", resp.text
    assert deps.repo.workloads.in_cluster(lab["cluster"]["id"]) == []


@pytest.mark.parametrize(
    ("change", "code", "words"),
    [
        ({"vms": [SMALL | {"engine": "firecracker"}]}, "invalid_input", "available engines: qemu"),
        ({"vms": [SMALL, SMALL | {"engine": "jail"}]}, "invalid_input", "vms[1].engine"),
        ({"vms": [SMALL | {"image": "other.qcow2"}]}, "egg_not_allowed", "base.qcow2"),
        ({"vms": [SMALL | {"mem": 32}]}, "below_minimum", "vms[0]"),
        ({"id": "a b"}, "invalid_input", "id"),
        ({"id": "x;touch /tmp/pwned"}, "invalid_input", "id"),
        ({"id": "x" * 65}, "invalid_input", "id"),
        ({"ssh_keys": ["ssh-ed25519 AAAA' ; touch /tmp/pwned; '"]}, "invalid_input", "ssh_keys"),
        ({"ssh_keys": [KEY + "\nssh-rsa AAAA injected"]}, "invalid_input", "ssh_keys"),
        ({"vms": []}, "invalid_input", "vms"),
        ({"vms": [SMALL] * 33}, "invalid_input", "vms"),
        ({"vms": [SMALL | {"ports": [0]}]}, "invalid_input", "ports"),
        ({"vms": [SMALL | {"image": "../etc/passwd"}]}, "invalid_input", "image"),
        ({"cluster_id": "nope"}, "not_found", "Cluster"),
        ({"lifetime": 0}, "invalid_input", "lifetime"),
    ],
)
def test_bad_requests_are_refused_and_write_nothing(
    api: Api, deps: Deps, lab: dict[str, Any], change: dict[str, Any], code: str, words: str
) -> None:
    resp = api.admin("POST", "/envs", _env(lab) | change)
    assert resp.status_code in (400, 404, 409), resp.text
    assert resp.json["error"]["code"] == code
    assert words in resp.json["error"]["message"]
    assert deps.repo.workloads.in_cluster(lab["cluster"]["id"]) == []


def test_env_ids_are_unique_per_cluster(api: Api, deps: Deps, lab: dict[str, Any]) -> None:
    assert api.admin("POST", "/envs", _env(lab, vms=[SMALL])).status_code == 202
    again = api.admin("POST", "/envs", _env(lab, vms=[SMALL]))
    assert again.status_code == 409 and again.json["error"]["code"] == "conflict"
    assert len(deps.repo.workloads.in_cluster(lab["cluster"]["id"])) == 1

    # The same id in another cluster is another env; the bare id is then ambiguous.
    other = api.make_cluster([lab["egg"]["id"]], ram_mb=4096)
    body = _env(lab, vms=[SMALL]) | {"cluster_id": other["id"]}
    assert api.admin("POST", "/envs", body).status_code == 202
    ambiguous = api.admin("GET", "/envs/dev")
    assert ambiguous.status_code == 400 and "cluster_id" in ambiguous.json["error"]["message"]
    picked = api.admin("GET", "/envs/dev", params={"cluster_id": other["id"]})
    assert picked.status_code == 200 and picked.json["cluster_id"] == other["id"]
    assert len(api.admin("GET", "/envs").json) == 2
    assert len(api.admin("GET", "/envs", params={"cluster_id": other["id"]}).json) == 1


def test_stop_start_and_delete_wait_for_operations_in_flight(
    api: Api, deps: Deps, lab: dict[str, Any]
) -> None:
    env = api.admin("POST", "/envs", _env(lab)).json
    for action in ("stop", "start"):
        resp = api.admin("POST", f"/envs/dev/{action}")
        assert resp.status_code == 409 and resp.json["error"]["code"] == "action_not_allowed"
    resp = api.admin("DELETE", "/envs/dev")
    assert resp.status_code == 409 and "in flight" in resp.json["error"]["message"]
    # Once provisioned (as the job would record it), stop/start/delete go through.
    for vm in env["vms"]:
        workload = deps.repo.workloads.get(lab["cluster"]["id"], vm["id"])
        assert workload.pending_op is not None
        op = deps.repo.operations.get(lab["cluster"]["id"], workload.pending_op)
        deps.repo.finish_operation(
            op, workload, status=WorkloadStatus.RUNNING, error=None, now=op.created_at
        )
    stopped = api.admin("POST", "/envs/dev/stop")
    assert stopped.status_code == 202, stopped.text
    assert [op["params"]["signal"] for op in stopped.json["operations"]] == ["stop", "stop"]
    deleted = api.admin("DELETE", "/envs/dev")
    assert deleted.status_code == 409  # the stops are in flight
    assert api.admin("GET", "/envs/dev").json["status"] == "running"


def test_vm_fields_are_for_qemu_eggs_only(api: Api, lab: dict[str, Any]) -> None:
    box = api.tenant(
        "POST", "/containers", {"name": "c", "egg_id": lab["box"]["id"]} | {"ssh_keys": [KEY]}
    )
    assert box.status_code == 400 and box.json["error"]["code"] == "invalid_input"
    assert "qemu" in box.json["error"]["message"]
    vm = api.tenant(
        "POST",
        "/containers",
        {
            "name": "x'; touch /tmp/pwned; $(id)",
            "egg_id": lab["egg"]["id"],
            "ssh_keys": [KEY],
            "guest_ports": [8080, 80, 80],
            "deny_outgoing": True,
        },
    )
    assert vm.status_code == 202, vm.text
    container = vm.json["container"]
    assert container["engine"] == "qemu" and container["restart_needed"] is False
    assert container["vm"]["ports"] == [22, 80, 8080]
    assert container["vm"]["deny_outgoing"] is True
    assert api.admin("GET", f"/vms/{container['id']}").json["env_id"] is None
    assert container["resources"]["ports"] == 3  # one per forwarded port


def test_images_recorded_by_the_health_check_steer_placement(
    api: Api, deps: Deps, lab: dict[str, Any]
) -> None:
    from datetime import UTC, datetime

    from shared.models import HostStatus

    for host in lab["hosts"]:
        record = deps.repo.hosts.get(host["id"])
        deps.repo.hosts.record_health(
            record, HostStatus.READY, datetime.now(UTC), heartbeat=None, images=("other.qcow2",)
        )
    resp = api.admin("POST", "/envs", _env(lab, vms=[SMALL]))
    assert resp.status_code == 409, resp.text
    assert "image base.qcow2" in resp.json["error"]["message"]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"address": "ssh://root@host;touch:22"}, "address"),
        ({"address": "ssh://root@host:99999"}, "address"),
        ({"labels": {"corral.base_dir": "relative/vms"}}, "corral.base_dir"),
        ({"labels": {"corral.images_dir": "/srv/../etc"}}, "corral.images_dir"),
        ({"labels": {"corral.accel": "kvm,x=1"}}, "labels"),
        ({"ssh_host_key": None}, "ssh_host_key"),
        ({"engines": ["docker"]}, "ssh hosts run qemu workloads only"),
    ],
)
def test_vm_hosts_are_checked_at_registration(api: Api, change: dict[str, Any], words: str) -> None:
    body = {
        "name": "bad",
        "driver": "ssh",
        "address": "ssh://root@host.invalid:2222",
        "capacity": {"cpu_cores": 8, "ram_mb": 1024},
        "ssh_host_key": "ssh-ed25519 AAAA",
        "ssh_private_key": "pem",
    } | change
    resp = api.admin("POST", "/hosts", {k: v for k, v in body.items() if v is not None})
    assert resp.status_code == 400, resp.text
    assert words in resp.json["error"]["message"]


def test_a_host_runs_the_engine_its_driver_speaks(api: Api) -> None:
    vm_host = _vm_host(api, "defaults")
    assert vm_host["engines"] == ["qemu"]
    resp = api.admin(
        "POST",
        "/hosts",
        {
            "name": "mixed",
            "address": "unix:///var/run/docker.sock",
            "engines": ["docker", "qemu"],
            "capacity": {"cpu_cores": 1, "ram_mb": 64},
        },
    )
    assert resp.status_code == 400 and "docker hosts run docker" in resp.json["error"]["message"]


def test_the_largest_env_fits_one_transaction(api: Api, deps: Deps, lab: dict[str, Any]) -> None:
    """32 VMs on 32 hosts, sent with an Idempotency-Key: the env, 32 VMs, 32 operations,
    the cluster and 32 hosts, the event and the key's claim are the 100 items one
    transaction may hold; one VM more is refused before any write."""
    for host in lab["hosts"]:
        api.admin("DELETE", f"/hosts/{host['id']}")
    hosts = [_vm_host(api, f"h{i}", ram_mb=256) for i in range(MAX_VMS_PER_ENV + 1)]
    cluster = api.make_cluster(
        [lab["egg"]["id"]], cpu_cores=64, ram_mb=8192, storage_mb=65536, ports=64, containers=32
    )
    too_many = [SMALL | {"mem": 256} for _ in range(MAX_VMS_PER_ENV + 1)]
    resp = api.admin("POST", "/envs", _env(lab, "wider", cluster_id=cluster["id"], vms=too_many))
    assert resp.status_code == 400 and resp.json["error"]["code"] == "invalid_input", resp.text

    vms = too_many[:MAX_VMS_PER_ENV]
    resp = api.admin(
        "POST",
        "/envs",
        _env(lab, "wide", cluster_id=cluster["id"], vms=vms),
        headers={"Idempotency-Key": "the-largest-env"},
    )
    assert resp.status_code == 202, resp.text
    assert len({vm["host_id"] for vm in resp.json["vms"]}) == MAX_VMS_PER_ENV
    assert {vm["host_id"] for vm in resp.json["vms"]} <= {h["id"] for h in hosts}
    assert len(deps.repo.workloads.in_cluster(cluster["id"])) == MAX_VMS_PER_ENV


def _expiry(text: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_an_env_lease_renews_the_env_and_every_vm(
    api: Api, deps: Deps, lab: dict[str, Any]
) -> None:
    env = api.admin("POST", "/envs", _env(lab, lifetime=60)).json
    before = _expiry(env["expires_at"])
    resp = api.admin("POST", "/envs/dev/lease", {"lifetime": 7200})
    assert resp.status_code == 200, resp.text
    renewed = _expiry(resp.json["expires_at"])
    assert renewed > before
    assert {_expiry(vm["expires_at"]) for vm in resp.json["vms"]} == {renewed}
    for vm in env["vms"]:
        stored = deps.repo.workloads.get(lab["cluster"]["id"], vm["id"])
        assert stored.expires_at == renewed
    # refusals: nothing given, both given, unknown env
    assert api.admin("POST", "/envs/dev/lease", {}).json["error"]["code"] == "invalid_input"
    both = api.admin(
        "POST", "/envs/dev/lease", {"lifetime": 5, "expires_at": "2999-01-01T00:00:00Z"}
    )
    assert both.status_code == 400
    assert api.admin("POST", "/envs/nope/lease", {"lifetime": 5}).status_code == 404


def test_an_env_lease_stays_within_the_plan_maximum(
    api: Api, deps: Deps, lab: dict[str, Any]
) -> None:
    api.admin(
        "PATCH",
        f"/clusters/{lab['cluster']['id']}",
        {
            "plan": {
                "cpu_cores": 4,
                "ram_mb": 8192,
                "storage_mb": 20480,
                "ports": 10,
                "containers": 10,
                "max_lifetime": 3600,
            }
        },
    )
    assert api.admin("POST", "/envs", _env(lab, lifetime=600)).status_code == 202
    too_long = api.admin("POST", "/envs/dev/lease", {"lifetime": 7200})
    assert too_long.status_code == 400 and "3600" in too_long.json["error"]["message"]


def test_a_vm_keeps_a_ports_unit_per_forwarded_port_when_resized(
    api: Api, deps: Deps, lab: dict[str, Any]
) -> None:
    # Issue 12, defect 7: resizing `ports` skipped vm_resources, so the cluster showed
    # 0 of 6 ports used while the VM forwarded 6.
    created = api.tenant(
        "POST",
        "/containers",
        {"name": "vm", "egg_id": lab["egg"]["id"], "guest_ports": [80, 443, 8080, 8443, 9000]},
    )
    assert created.status_code == 202, created.text
    cid = created.json["container"]["id"]
    assert created.json["container"]["resources"]["ports"] == 6
    workload = deps.repo.workloads.get(lab["cluster"]["id"], cid)
    assert workload.pending_op is not None
    operation = deps.repo.operations.get(lab["cluster"]["id"], workload.pending_op)
    assert deps.repo.finish_operation(
        operation, workload, status=WorkloadStatus.RUNNING, error=None, now=utc_now()
    )

    to_zero = api.tenant("PATCH", f"/containers/{cid}", {"resources": {"ports": 0}})
    assert to_zero.status_code == 400, to_zero.text  # counted as 6 it is no change
    resized = api.tenant("PATCH", f"/containers/{cid}", {"resources": {"ports": 2, "ram_mb": 256}})

    assert resized.status_code == 202, resized.text
    assert resized.json["container"]["resources"]["ports"] == 6
    assert api.tenant("GET", f"/containers/{cid}").json["resources"]["ports"] == 6
    assert api.tenant("GET", "/cluster").json["used"]["ports"] == 6
