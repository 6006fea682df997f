"""Environments and VMs through the HTTP API, on real sshd hosts in network namespaces
running real QEMU (TCG): what the API says matches the hosts.

The two hosts are registered through POST /api/v1/hosts with their real pinned keys and
checked by the health check (which records their images). Booting a guest under TCG
takes a while, so one environment of two VMs is made once for the module and the
tests run in file order against it: placement refusals first (nothing may be written),
then the env's life (shape, ports, outbound traffic, pause, resize, stop/start, delete),
then hostile input and a host registered with the wrong key.

The table, the queue, the app and the worker context are the same pieces as the
`api`/`deps`/`worker_context` fixtures, built once per module so the VMs outlive a test.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from infra.drivers.qemu.driver import QemuDriver
from infra.drivers.qemu.record import workload_dir_name
from tests.fixtures.corral import Api, Stack, module_stack, run_jobs
from tests.fixtures.netns import SshHost
from tests.fixtures.vm_images import INITRD_NAME, KERNEL_NAME, VmImages
from tests.integration.vm.conftest import (
    guest_hello,
    make_vm_egg,
    read_seed_iso,
    settle,
    wait_until,
)
from workers.hosts import check_host, check_hosts

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
BOOT_TIMEOUT = 240.0
PROBE_PORT = 9977  # each host's loopback; the guests reach it as 10.0.2.2 (QEMU user net)
HOST_RAM_MB = 300  # two test VMs never fit on one host: the env spreads over both
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq0Cw9bmL6J8fM3p4rWn2M7Q0dD4xP6y1vU8n9s2kLr dev@box"
HOSTILE = 'x\'; touch /tmp/pwned; "$(touch /tmp/pwned)" `touch /tmp/pwned`'


# -- the stack and the fleet, once per module ---------------------------------------


@pytest.fixture(scope="module")
def stack(table_endpoint: str, redis_url: str) -> Iterator[Stack]:
    with module_stack(table_endpoint, redis_url, "envs") as built:
        yield built


@dataclass
class Fleet:
    stack: Stack
    ssh: list[SshHost]
    host_ids: list[str]
    egg: dict[str, Any]
    cluster: dict[str, Any]

    @property
    def api(self) -> Api:
        return self.stack.api

    def base_dir(self, index: int) -> Path:
        return self.ssh[index].root / "corral-vms"

    def probe_log(self, index: int) -> Path:
        return self.ssh[index].root / "probe.log"

    def index_of(self, host_id: str) -> int:
        return self.host_ids.index(host_id)

    def folder(self, vm: dict[str, Any]) -> Path:
        return self.base_dir(self.index_of(vm["host_id"])) / workload_dir_name(vm["id"])

    def console(self, vm: dict[str, Any]) -> bytes:
        try:
            return (self.folder(vm) / "console.log").read_bytes()
        except FileNotFoundError:
            return b""

    def driver(self, vm: dict[str, Any]) -> QemuDriver:
        """The worker's own driver for the VM's host (built by the driver factory)."""
        host = self.stack.deps.repo.hosts.get(vm["host_id"])
        driver = self.stack.ctx.drivers.for_host(host)
        assert isinstance(driver, QemuDriver)
        return driver

    def used(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        cluster = self.api.admin("GET", f"/clusters/{self.cluster['id']}").json["used"]
        hosts = [self.api.admin("GET", f"/hosts/{h}").json["used"] for h in self.host_ids]
        return cluster, hosts


def _register(api: Api, ssh: SshHost, index: int, base_dir: Path, **overrides: Any) -> str:
    body = {
        "name": f"vmhost{index}",
        "driver": "ssh",
        "address": f"ssh://{ssh.username}@{ssh.address}:{ssh.port}",
        "engines": ["qemu"],
        "capacity": {"cpu_cores": 4, "ram_mb": HOST_RAM_MB, "storage_mb": 4096},
        "labels": {
            "corral.base_dir": str(base_dir),
            "corral.images_dir": str(ssh.images_dir),
            "corral.accel": "tcg",
            "corral.vm_outgoing": "allow",  # the guests' probe goes to its loopback
        },
        "ssh_host_key": ssh.host_key,
        "ssh_private_key": ssh.client_key_pem,
        "port_range": [22000 + 100 * index, 22099 + 100 * index],
    } | overrides
    resp = api.admin("POST", "/hosts", body)
    assert resp.status_code == 201, resp.text
    return str(resp.json["id"])


@pytest.fixture(scope="module")
def fleet(
    stack: Stack, ssh_host_pair: tuple[SshHost, SshHost], vm_images: VmImages
) -> Iterator[Fleet]:
    api = stack.api
    probes = []
    host_ids = []
    for index, ssh in enumerate(ssh_host_pair):
        vm_images.install_into(ssh.images_dir)
        log = ssh.root / "probe.log"
        log.write_bytes(b"")
        # A listener on the host's loopback that logs what the guests' probes send.
        probes.append(
            subprocess.Popen(
                [
                    "ip", "netns", "exec", ssh.name, "socat", "-u",
                    f"TCP-LISTEN:{PROBE_PORT},bind=127.0.0.1,fork,reuseaddr",
                    f"OPEN:{log},creat,append",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )  # fmt: skip
        host_ids.append(_register(api, ssh, index, ssh.root / "corral-vms"))
    assert set(check_hosts().values()) == {"ready"}
    for host_id in host_ids:
        images = stack.deps.repo.hosts.get(host_id).images
        assert {"base.qcow2", KERNEL_NAME, INITRD_NAME} <= set(images)
    args = f"console=ttyS0 quiet corral_listen=22,80,8080 corral_probe=10.0.2.2:{PROBE_PORT}"
    egg = make_vm_egg(api, args, stop_timeout=20)
    cluster = api.make_cluster(
        [egg["id"]], cpu_cores=16, ram_mb=4096, storage_mb=40960, ports=50, containers=20
    )
    api.tenant_key = api.make_key(cluster["id"])
    try:
        yield Fleet(stack, list(ssh_host_pair), host_ids, egg, cluster)
    finally:
        for process in probes:
            process.kill()
            process.wait(timeout=10)


def qemu_processes(folder: Path) -> list[list[str]]:
    """Argument vectors of live QEMU processes whose files are in `folder`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z" or not argv or b"qemu-system" not in argv[0]:
            continue
        if any(str(folder).encode() in arg for arg in argv):
            found.append([a.decode(errors="replace") for a in argv if a])
    return found


def wait_booted(fleet: Fleet, vm: dict[str, Any]) -> None:
    def booted() -> bool:
        if not qemu_processes(fleet.folder(vm)):
            pytest.fail(f"VM {vm['name']} stopped while booting: {fleet.console(vm)!r}")
        return b"CORRAL-BOOTED" in fleet.console(vm)

    wait_until(booted, BOOT_TIMEOUT, f"{vm['name']} to boot", step=1.0)


def vm_of(fleet: Fleet, vm_id: str) -> dict[str, Any]:
    resp = fleet.api.admin("GET", f"/vms/{vm_id}")
    assert resp.status_code == 200, resp.text
    return dict(resp.json)


def tenant_power(fleet: Fleet, vm_id: str, signal: str) -> None:
    resp = fleet.api.tenant("POST", f"/containers/{vm_id}/power", {"signal": signal})
    assert resp.status_code == 202, resp.text
    settle(fleet.stack.deps)
    op = fleet.api.tenant("GET", f"/operations/{resp.json['operation']['id']}").json
    assert op["status"] == "succeeded", op


# -- placement refusals: nothing is written ---------------------------------------


def test_env_whose_second_vm_fits_nowhere_writes_nothing(fleet: Fleet) -> None:
    before = fleet.used()
    body = {
        "id": "too-big",
        "cluster_id": fleet.cluster["id"],
        "ssh_keys": [KEY],
        "vms": [
            {"image": "base.qcow2", "cpu": 1, "mem": 128, "disk": 64},
            {"image": "base.qcow2", "cpu": 1, "mem": HOST_RAM_MB + 1, "disk": 64},
        ],
    }
    resp = fleet.api.admin("POST", "/envs", body)
    assert resp.status_code == 409, resp.text
    assert resp.json["error"]["code"] == "no_host_available"
    assert "vms[1]" in resp.json["error"]["message"]

    assert fleet.used() == before
    assert fleet.stack.deps.repo.workloads.in_cluster(fleet.cluster["id"]) == []
    assert fleet.api.admin("GET", "/envs/too-big").status_code == 404
    assert fleet.api.admin("GET", "/envs").json == []
    run_jobs(fleet.stack.deps)
    for index in (0, 1):
        assert not fleet.base_dir(index).exists() or not os.listdir(fleet.base_dir(index))


def test_engines_and_images_the_fleet_lacks_are_refused(fleet: Fleet) -> None:
    base = {"id": "nope", "cluster_id": fleet.cluster["id"], "ssh_keys": [KEY]}
    vm = {"image": "base.qcow2", "cpu": 1, "mem": 128, "disk": 64}
    resp = fleet.api.admin("POST", "/envs", base | {"vms": [vm | {"engine": "firecracker"}]})
    assert resp.status_code == 400 and resp.json["error"]["code"] == "invalid_input"
    assert "available engines: qemu" in resp.json["error"]["message"]

    # An egg for an image no host holds: the images the health check recorded decide.
    missing = fleet.api.make_egg(name="missing", engine="qemu", image="missing.qcow2", command=None)
    allow = [fleet.egg["id"], missing["id"]]
    assert (
        fleet.api.admin("PATCH", f"/clusters/{fleet.cluster['id']}", {"egg_ids": allow}).status_code
        == 200
    )
    resp = fleet.api.admin("POST", "/envs", base | {"vms": [vm | {"image": "missing.qcow2"}]})
    assert resp.status_code == 409, resp.text
    assert "vms[0]" in resp.json["error"]["message"]
    assert "image missing.qcow2" in resp.json["error"]["message"]
    assert fleet.stack.deps.repo.workloads.in_cluster(fleet.cluster["id"]) == []


# -- one environment of two VMs, shared by the tests below -------------------------


@dataclass
class EnvVms:
    id: str
    big: dict[str, Any]  # 2 vCPUs, 192 MiB, port 80, outbound allowed
    small: dict[str, Any]  # 1 vCPU, 160 MiB, ports 80 and 8080, outbound denied


@pytest.fixture(scope="module")
def env(fleet: Fleet) -> EnvVms:
    body = {
        "id": "dev-env",
        "cluster_id": fleet.cluster["id"],
        "owner": "alice",
        "ssh_keys": [KEY, fleet.ssh[0].client_public_key],
        "vms": [
            {"image": "base.qcow2", "cpu": 2, "mem": 192, "disk": 64, "ports": [80]},
            {
                "image": "base.qcow2",
                "cpu": 1,
                "mem": 160,
                "disk": 64,
                "ports": [80, 8080],
                "deny_outgoing": True,
            },
        ],
        "lifetime": 3600,
    }
    resp = fleet.api.admin("POST", "/envs", body)
    assert resp.status_code == 202, resp.text
    assert resp.json["status"] == "provisioning"
    settle(fleet.stack.deps)
    shown = fleet.api.admin("GET", "/envs/dev-env").json
    assert shown["status"] == "running", shown
    big, small = shown["vms"]
    for vm in (big, small):
        wait_booted(fleet, vm)
    return EnvVms(id="dev-env", big=big, small=small)


def test_env_vms_run_on_two_hosts_with_their_shape(fleet: Fleet, env: EnvVms) -> None:
    assert {env.big["host_id"], env.small["host_id"]} == set(fleet.host_ids)
    for vm, vcpus, ram_mb in ((env.big, 2, 192), (env.small, 1, 160)):
        assert (vm["cpu"], vm["mem"], vm["disk"]) == (vcpus, ram_mb, 64)
        assert vm["status"] == "running" and vm["env_id"] == env.id
        (argv,) = qemu_processes(fleet.folder(vm))
        assert argv[argv.index("-smp") + 1] == str(vcpus)
        assert argv[argv.index("-m") + 1] == str(ram_mb)
        driver = fleet.driver(vm)
        assert len(driver.qmp(vm["id"], "query-cpus-fast")) == vcpus
        memory = driver.qmp(vm["id"], "query-memory-size-summary")
        assert memory["base-memory"] == ram_mb * MIB

    cluster, hosts = fleet.used()
    assert cluster["ram_mb"] == 192 + 160 and cluster["containers"] == 2
    assert cluster["ports"] == 2 + 3  # forwarded ports, 22 included
    assert sorted(h["ram_mb"] for h in hosts) == [160, 192]

    shown = fleet.api.admin("GET", f"/envs/{env.id}").json
    assert shown["owner"] == "alice" and shown["lifetime"] == 3600
    assert [vm["expires_at"] for vm in shown["vms"]] == [shown["expires_at"]] * 2
    # The seed carries the env's keys to cloud-init.
    _, files = read_seed_iso(fleet.folder(env.big) / "seed.iso")
    keys = json.loads(files["user-data"].split("\n", 1)[1])["ssh_authorized_keys"]
    assert keys == [KEY, fleet.ssh[0].client_public_key]


def test_exposed_ports_answer_from_outside_the_host(fleet: Fleet, env: EnvVms) -> None:
    for vm, guest_ports in ((env.big, [22, 80]), (env.small, [22, 80, 8080])):
        shown = vm_of(fleet, vm["id"])
        ssh = fleet.ssh[fleet.index_of(vm["host_id"])]
        assert shown["vm"]["address"] == ssh.address
        forwarded = shown["vm"]["forwarded_ports"]
        assert sorted(int(g) for g in forwarded) == guest_ports
        for guest, port in forwarded.items():
            # From the root namespace to the host's address: from outside the host.
            answer = guest_hello(ssh.address, port)
            assert answer == f"corral-guest-hello {guest}\n".encode(), fleet.console(vm)
    # Port 8080 listens in the first guest too, but it was not asked to be exposed.
    assert "8080" not in vm_of(fleet, env.big["id"])["vm"]["forwarded_ports"]


def test_deny_outgoing_cuts_off_only_the_vm_that_asked(fleet: Fleet, env: EnvVms) -> None:
    allowed = fleet.probe_log(fleet.index_of(env.big["host_id"]))
    wait_until(lambda: b"corral-probe" in allowed.read_bytes(), 60, "the outbound probe")
    assert b"CORRAL-OUTBOUND-OK" in fleet.console(env.big)

    denied = fleet.probe_log(fleet.index_of(env.small["host_id"]))
    wait_until(
        lambda: fleet.console(env.small).count(b"CORRAL-OUTBOUND-FAIL") >= 2,
        60,
        "two failed probes of the denied guest",
    )
    assert b"CORRAL-OUTBOUND-OK" not in fleet.console(env.small)
    assert denied.read_bytes() == b""


def test_pause_and_resume_through_the_tenant_api_are_seen_in_qmp(fleet: Fleet, env: EnvVms) -> None:
    vm = env.big
    tenant_power(fleet, vm["id"], "pause")
    assert fleet.driver(vm).qmp(vm["id"], "query-status")["status"] == "paused"
    assert fleet.api.tenant("GET", f"/containers/{vm['id']}").json["status"] == "paused"

    tenant_power(fleet, vm["id"], "resume")
    assert fleet.driver(vm).qmp(vm["id"], "query-status")["status"] == "running"
    assert fleet.api.tenant("GET", f"/containers/{vm['id']}").json["status"] == "running"
    port = vm_of(fleet, vm["id"])["vm"]["forwarded_ports"]["80"]
    assert guest_hello(fleet.ssh[fleet.index_of(vm["host_id"])].address, port) == (
        b"corral-guest-hello 80\n"
    )


def test_resize_of_a_running_vm_waits_for_its_restart(fleet: Fleet, env: EnvVms) -> None:
    vm = env.small
    resp = fleet.api.tenant("PATCH", f"/containers/{vm['id']}", {"resources": {"ram_mb": 224}})
    assert resp.status_code == 202, resp.text
    settle(fleet.stack.deps)
    shown = fleet.api.tenant("GET", f"/containers/{vm['id']}").json
    assert shown["status"] == "running" and shown["restart_needed"] is True
    assert shown["resources"]["ram_mb"] == 224
    memory = fleet.driver(vm).qmp(vm["id"], "query-memory-size-summary")
    assert memory["base-memory"] == 160 * MIB

    shrink = fleet.api.tenant("PATCH", f"/containers/{vm['id']}", {"resources": {"storage_mb": 32}})
    assert shrink.status_code == 400 and "cannot shrink" in shrink.json["error"]["message"]

    tenant_power(fleet, vm["id"], "restart")
    shown = fleet.api.tenant("GET", f"/containers/{vm['id']}").json
    assert shown["status"] == "running" and shown["restart_needed"] is False
    memory = fleet.driver(vm).qmp(vm["id"], "query-memory-size-summary")
    assert memory["base-memory"] == 224 * MIB
    (argv,) = qemu_processes(fleet.folder(vm))
    assert argv[argv.index("-m") + 1] == "224"
    wait_booted(fleet, vm)


def test_stop_and_start_the_env(fleet: Fleet, env: EnvVms) -> None:
    resp = fleet.api.admin("POST", f"/envs/{env.id}/stop")
    assert resp.status_code == 202, resp.text
    assert sorted(op["params"]["signal"] for op in resp.json["operations"]) == ["stop", "stop"]
    settle(fleet.stack.deps)
    shown = fleet.api.admin("GET", f"/envs/{env.id}").json
    assert shown["status"] == "stopped", shown
    for vm in (env.big, env.small):
        assert qemu_processes(fleet.folder(vm)) == []
        assert b"CORRAL-POWEROFF" in fleet.console(vm)  # the guest saw the power button

    resp = fleet.api.admin("POST", f"/envs/{env.id}/start")
    assert resp.status_code == 202, resp.text
    settle(fleet.stack.deps)
    assert fleet.api.admin("GET", f"/envs/{env.id}").json["status"] == "running"
    for vm in (env.big, env.small):
        assert len(qemu_processes(fleet.folder(vm))) == 1
        assert fleet.driver(vm).qmp(vm["id"], "query-status")["status"] == "running"


def test_delete_env_leaves_no_process_no_file_and_frees_capacity(fleet: Fleet, env: EnvVms) -> None:
    resp = fleet.api.admin("DELETE", f"/envs/{env.id}")
    assert resp.status_code == 202, resp.text
    assert {vm["status"] for vm in resp.json["vms"]} == {"deleting"}
    settle(fleet.stack.deps)

    for vm in (env.big, env.small):
        assert qemu_processes(fleet.folder(vm)) == []
        assert not fleet.folder(vm).exists()
        assert vm_of(fleet, vm["id"])["status"] == "deleted"
    for index in (0, 1):
        assert os.listdir(fleet.base_dir(index)) == []
    cluster, hosts = fleet.used()
    assert set(cluster.values()) == {0}, cluster
    assert all(set(h.values()) == {0} for h in hosts), hosts
    assert fleet.api.admin("GET", f"/envs/{env.id}").json["status"] == "deleted"
    assert fleet.api.admin("GET", "/envs").json == []


# -- hostile input -------------------------------------------------------------------


def test_shell_metacharacters_through_the_api_create_nothing_unexpected(fleet: Fleet) -> None:
    pwned = Path("/tmp/pwned")
    pwned.unlink(missing_ok=True)
    before = [set(os.listdir(fleet.base_dir(i))) for i in (0, 1)]
    hostile_key = f"{KEY} $(touch /tmp/pwned);`touch /tmp/pwned`;'\"|touch /tmp/pwned"

    refused = fleet.api.admin(
        "POST",
        "/envs",
        {
            "id": HOSTILE,
            "cluster_id": fleet.cluster["id"],
            "ssh_keys": [KEY],
            "vms": [{"image": "base.qcow2", "cpu": 1, "mem": 64, "disk": 64}],
        },
    )
    assert refused.status_code == 400 and refused.json["error"]["code"] == "invalid_input"
    for key in (f"{KEY}\n$(touch /tmp/pwned)", "ssh-ed25519 AAAA'; touch /tmp/pwned; '"):
        resp = fleet.api.tenant(
            "POST", "/containers", {"name": "k", "egg_id": fleet.egg["id"], "ssh_keys": [key]}
        )
        assert resp.status_code == 400 and resp.json["error"]["code"] == "invalid_input"

    resp = fleet.api.tenant(
        "POST",
        "/containers",
        {
            "name": HOSTILE,
            "egg_id": fleet.egg["id"],
            "ram_mb": 96,
            "ssh_keys": [hostile_key],
            "guest_ports": [80],
            "deny_outgoing": True,
        },
    )
    assert resp.status_code == 202, resp.text
    settle(fleet.stack.deps)
    vm = vm_of(fleet, resp.json["container"]["id"])
    assert vm["status"] == "running" and vm["name"] == HOSTILE, vm
    index = fleet.index_of(vm["host_id"])

    created = set(os.listdir(fleet.base_dir(index))) - before[index]
    assert created == {workload_dir_name(vm["id"])}
    _, files = read_seed_iso(fleet.folder(vm) / "seed.iso")
    user_data = json.loads(files["user-data"].split("\n", 1)[1])
    assert user_data["ssh_authorized_keys"] == [hostile_key]
    assert HOSTILE not in json.dumps(files)  # the name stays in the table

    resp = fleet.api.tenant("DELETE", f"/containers/{vm['id']}")
    assert resp.status_code == 202, resp.text
    settle(fleet.stack.deps)
    assert qemu_processes(fleet.folder(vm)) == []
    assert [set(os.listdir(fleet.base_dir(i))) for i in (0, 1)] == before
    assert not pwned.exists()
    assert not list(Path("/").glob("pwned*")) and not list(Path("/tmp").glob("pwned*"))


def instantiate_on(fleet: Fleet, role: str, name: str) -> dict[str, Any]:
    """Create a VM of the fleet's egg on the host labelled `corral.role: <role>`."""
    resp = fleet.api.admin(
        "POST",
        f"/templates/{fleet.egg['id']}/instantiate",
        {"cluster_id": fleet.cluster["id"], "name": name, "constraints": {"corral.role": role}},
    )
    assert resp.status_code == 202, resp.text
    return dict(resp.json)


# -- a host registered with the wrong key -------------------------------------------


def test_host_registered_with_the_wrong_key_fails_clearly_and_creates_nothing(
    fleet: Fleet,
) -> None:
    first, second = fleet.ssh
    folder = first.root / "impostor-vms"
    impostor = _register(
        fleet.api,
        first,
        2,
        folder,
        name="impostor",
        ssh_host_key=second.host_key,  # not the key host 0 presents
        labels={
            "corral.base_dir": str(folder),
            "corral.images_dir": str(first.images_dir),
            "corral.accel": "tcg",
            "corral.role": "impostor",
        },
    )
    accepted = instantiate_on(fleet, "impostor", "on-impostor")
    vm_id = accepted["container"]["id"]
    started = time.monotonic()
    settle(fleet.stack.deps)
    assert time.monotonic() - started < 60  # refused at once, never retried

    op = fleet.api.tenant("GET", f"/operations/{accepted['operation']['id']}").json
    assert op["status"] == "failed"
    assert "host key" in op["error"] and "refusing to connect" in op["error"], op
    shown = vm_of(fleet, vm_id)
    assert shown["status"] == "error" and shown["error"] == op["error"]
    assert shown["host_id"] == impostor
    assert not folder.exists()
    assert qemu_processes(folder) == []

    # The health check refuses it the same way: the host is not ready for placements.
    checked = check_host(fleet.stack.ctx, fleet.stack.deps.repo.hosts.get(impostor))
    assert checked.status.value == "not_ready"
    with contextlib.suppress(Exception):
        fleet.api.tenant("DELETE", f"/containers/{vm_id}")


# -- a host whose operator did not opt in to outgoing traffic ----------------------


def test_without_the_operators_opt_in_a_guest_cannot_reach_the_hosts_loopback(
    fleet: Fleet,
) -> None:
    """Issue 12, defect 10: QEMU user networking ran with restrict=off, so every guest
    reached the VM host's loopback services as 10.0.2.2 (here: the probe listener on
    127.0.0.1 of the host's namespace)."""
    second = fleet.ssh[1]
    folder = second.root / "closed-vms"
    closed = _register(
        fleet.api,
        second,
        3,
        folder,
        name="closed",
        labels={
            "corral.base_dir": str(folder),
            "corral.images_dir": str(second.images_dir),
            "corral.accel": "tcg",
            "corral.role": "closed",
        },
    )
    assert check_host(fleet.stack.ctx, fleet.stack.deps.repo.hosts.get(closed)).status.value == (
        "ready"
    )
    probe_log = fleet.probe_log(1)
    heard_before = probe_log.read_bytes()
    vm_id = instantiate_on(fleet, "closed", "closed-vm")["container"]["id"]
    try:
        settle(fleet.stack.deps)
        shown = vm_of(fleet, vm_id)
        assert shown["status"] == "running" and shown["host_id"] == closed, shown
        assert shown["vm"]["deny_outgoing"] is False  # the VM itself did not ask
        console = folder / workload_dir_name(vm_id) / "console.log"

        def probed_twice() -> bool:
            return console.read_bytes().count(b"CORRAL-OUTBOUND-FAIL") >= 2

        wait_until(probed_twice, BOOT_TIMEOUT, "two failed probes of the guest", step=1.0)
        assert b"CORRAL-BOOTED" in console.read_bytes()
        assert b"CORRAL-OUTBOUND-OK" not in console.read_bytes()
        assert probe_log.read_bytes() == heard_before
        (argv,) = qemu_processes(folder)
        assert ",restrict=on" in argv[argv.index("-netdev") + 1]
    finally:
        fleet.api.tenant("DELETE", f"/containers/{vm_id}")
        settle(fleet.stack.deps)
        fleet.api.admin("DELETE", f"/hosts/{closed}")
    assert qemu_processes(folder) == []
