"""QemuDriver against real sshd hosts in network namespaces and real QEMU (TCG).

The tests share two booted VMs (see conftest) and run in file order: power tests
come after the ones that need the first boot, removal comes last.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest

from infra.drivers.qemu.driver import QemuDriver
from infra.drivers.qemu.record import workload_dir_name
from infra.drivers.ssh.keys import scan_host_key
from shared.errors import HostError
from shared.runtime import LABEL_CLUSTER, LABEL_WORKLOAD, RuntimeState
from shared.states import PowerSignal
from tests.integration.vm.conftest import (
    BootedVms,
    VmHost,
    console,
    guest_hello,
    read_seed_iso,
    vm_spec,
    wait_booted,
    wait_until,
)

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


def qemu_pid(host: VmHost, workload_id: str) -> int:
    pidfile = host.ssh.base_dir / workload_dir_name(workload_id) / "qemu.pid"
    return int(pidfile.read_text())


def last_qemu_pid(host: VmHost, workload_id: str) -> int | None:
    try:
        return qemu_pid(host, workload_id)
    except FileNotFoundError:
        return None


def live_qemu_args(host: VmHost) -> list[str]:
    """Command lines of QEMU processes (not zombies) of the host, seen over SSH. The
    namespaces share the machine's process table, so `ps` also lists the VMs of any
    other test run on the machine: the host's own name its folder (disk, image)."""
    with host.ssh.connection() as ssh:
        out = ssh.check(["ps", "-eo", "stat=,args="]).decode()
    lines = [line.strip() for line in out.splitlines()]
    return [
        line.split(None, 1)[1]
        for line in lines
        if "qemu-system" in line and line[0] != "Z" and f"{host.ssh.root}/" in line
    ]


def process_name(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except FileNotFoundError:
        return None


def process_alive(pid: int) -> bool:
    try:
        return bool(Path(f"/proc/{pid}/cmdline").read_bytes())
    except FileNotFoundError:
        return False


def test_vms_run_with_requested_memory_and_vcpus(vm_hosts: list[VmHost], booted: BootedVms) -> None:
    for host, workload_id, vcpus, ram_mb in (
        (vm_hosts[0], booted.alpha, 2, 192),
        (vm_hosts[1], booted.beta, 1, 160),
    ):
        observed = host.driver.inspect(workload_id)
        assert observed.state is RuntimeState.RUNNING
        assert observed.labels[LABEL_WORKLOAD] == workload_id
        assert observed.enforced["ram_mb"] and observed.enforced["cpu_cores"]

        (args,) = [a for a in live_qemu_args(host) if workload_dir_name(workload_id) in a]
        assert f" -smp {vcpus} " in args and f" -m {ram_mb} " in args
        assert " -machine q35,accel=tcg " in args

        assert len(host.driver.qmp(workload_id, "query-cpus-fast")) == vcpus
        memory = host.driver.qmp(workload_id, "query-memory-size-summary")
        assert memory["base-memory"] == ram_mb * MIB

        assert [o.workload_id for o in host.driver.list_managed()] == [workload_id]


def read_seed(host: VmHost, workload_id: str) -> tuple[str, dict[str, str]]:
    return read_seed_iso(host.ssh.base_dir / workload_dir_name(workload_id) / "seed.iso")


def test_seed_iso_carries_cloud_init_data(vm_hosts: list[VmHost], booted: BootedVms) -> None:
    host = vm_hosts[0]
    label, files = read_seed(host, booted.alpha)
    assert label == "cidata"
    assert files["user-data"].startswith("#cloud-config\n")
    user_data = json.loads(files["user-data"].split("\n", 1)[1])
    assert user_data["ssh_authorized_keys"] == [host.ssh.client_public_key]
    assert json.loads(files["meta-data"])["instance-id"] == booted.alpha


def test_exposed_ports_answer_from_outside_the_host(
    vm_hosts: list[VmHost], booted: BootedVms
) -> None:
    for host, workload_id, guest_ports in (
        (vm_hosts[0], booted.alpha, [22, 80]),
        (vm_hosts[1], booted.beta, [22, 80, 8080]),  # restrict=on still forwards
    ):
        ports = host.driver.forwarded_ports(workload_id)
        assert sorted(ports) == guest_ports
        assert all(p in range(21000, 21100) for p in ports.values())
        for guest, forwarded in ports.items():
            # From the root namespace to the host namespace's address: outside the host.
            answer = guest_hello(host.ssh.address, forwarded)
            assert answer == f"corral-guest-hello {guest}\n".encode(), console(host, workload_id)


def test_outbound_traffic_only_without_deny_outgoing(
    vm_hosts: list[VmHost], booted: BootedVms
) -> None:
    allowed, denied = vm_hosts
    wait_until(
        lambda: any(data.startswith(b"corral-probe") for _, data in allowed.probe.connections),
        30,
        "the guest's outbound probe",
    )
    assert {peer for peer, _ in allowed.probe.connections} == {allowed.ssh.address}
    assert b"CORRAL-OUTBOUND-OK" in allowed.driver.console_log(booted.alpha)

    wait_until(
        lambda: denied.driver.console_log(booted.beta).count(b"CORRAL-OUTBOUND-FAIL") >= 2,
        30,
        "two failed probes of the denied guest",
    )
    assert b"CORRAL-OUTBOUND-OK" not in denied.driver.console_log(booted.beta)
    assert denied.probe.connections == []


def test_pause_and_resume_are_seen_through_qmp(vm_hosts: list[VmHost], booted: BootedVms) -> None:
    host = vm_hosts[0]
    observed = host.driver.power(booted.alpha, PowerSignal.PAUSE)
    assert observed.state is RuntimeState.PAUSED
    assert host.driver.qmp(booted.alpha, "query-status")["status"] == "paused"
    assert host.driver.power(booted.alpha, PowerSignal.PAUSE).state is RuntimeState.PAUSED

    observed = host.driver.power(booted.alpha, PowerSignal.RESUME)
    assert observed.state is RuntimeState.RUNNING
    assert host.driver.qmp(booted.alpha, "query-status")["status"] == "running"
    forwarded = host.driver.forwarded_ports(booted.alpha)[80]
    assert guest_hello(host.ssh.address, forwarded) == b"corral-guest-hello 80\n"


def test_resize_grows_disk_live_and_memory_and_vcpus_at_restart(
    vm_hosts: list[VmHost], booted: BootedVms
) -> None:
    host = vm_hosts[0]
    bigger = vm_spec(booted.alpha, cpu_centi=300, ram_mb=256, storage_mb=96)
    assert host.driver.apply_resources(bigger).state is RuntimeState.RUNNING

    (disk,) = [d for d in host.driver.qmp(booted.alpha, "query-block") if d["device"] == "disk0"]
    assert disk["inserted"]["image"]["virtual-size"] == 96 * MIB
    assert host.driver.restart_needed(booted.alpha)
    assert len(host.driver.qmp(booted.alpha, "query-cpus-fast")) == 2

    old_pid = qemu_pid(host, booted.alpha)
    observed = host.driver.power(booted.alpha, PowerSignal.RESTART, stop_timeout=30)
    assert observed.state is RuntimeState.RUNNING
    assert qemu_pid(host, booted.alpha) != old_pid
    assert not process_alive(old_pid)
    assert not host.driver.restart_needed(booted.alpha)
    assert len(host.driver.qmp(booted.alpha, "query-cpus-fast")) == 3
    memory = host.driver.qmp(booted.alpha, "query-memory-size-summary")
    assert memory["base-memory"] == 256 * MIB

    with pytest.raises(HostError, match="cannot shrink"):
        host.driver.apply_resources(vm_spec(booted.alpha, cpu_centi=300, ram_mb=256))


def test_stop_is_graceful_then_start_boots_again(vm_hosts: list[VmHost], booted: BootedVms) -> None:
    host = vm_hosts[1]
    pid = qemu_pid(host, booted.beta)
    began = time.monotonic()
    observed = host.driver.power(booted.beta, PowerSignal.STOP, stop_timeout=30)
    assert observed.state is RuntimeState.STOPPED
    assert time.monotonic() - began < 25  # the ACPI button worked; no hard kill
    assert b"CORRAL-POWEROFF" in host.driver.console_log(booted.beta)
    assert not process_alive(pid)
    assert host.driver.power(booted.beta, PowerSignal.STOP).state is RuntimeState.STOPPED
    with pytest.raises(HostError, match="not running"):
        host.driver.power(booted.beta, PowerSignal.PAUSE)

    # A stopped VM's disk grows with qemu-img.
    host.driver.apply_resources(vm_spec(booted.beta, storage_mb=80))
    disk = host.ssh.base_dir / workload_dir_name(booted.beta) / "disk.qcow2"
    info = subprocess.run(
        ["qemu-img", "info", "--output=json", "-U", str(disk)],
        capture_output=True,
        check=True,
    )
    assert json.loads(info.stdout)["virtual-size"] == 80 * MIB

    assert host.driver.power(booted.beta, PowerSignal.START).state is RuntimeState.RUNNING
    assert host.driver.power(booted.beta, PowerSignal.START).state is RuntimeState.RUNNING
    wait_booted(host, booted.beta)
    forwarded = host.driver.forwarded_ports(booted.beta)[8080]
    assert guest_hello(host.ssh.address, forwarded) == b"corral-guest-hello 8080\n"

    pid = qemu_pid(host, booted.beta)
    assert host.driver.power(booted.beta, PowerSignal.KILL).state is RuntimeState.STOPPED
    assert not process_alive(pid)


def test_probe_lists_the_hosts_images(vm_hosts: list[VmHost]) -> None:
    for host in vm_hosts:
        images = host.driver.probe().images
        assert set(images) == {"base.qcow2", "initramfs.gz", "vmlinuz"}
    lacking = QemuDriver(
        vm_hosts[0].ssh.connection(),
        base_dir=str(vm_hosts[0].ssh.base_dir),
        qemu_binary="qemu-system-nonexistent",
    )
    with pytest.raises(HostError, match="lacks qemu-system-nonexistent"):
        lacking.probe()
    lacking.close()


def test_host_with_another_key_is_refused(vm_hosts: list[VmHost]) -> None:
    first, second = (h.ssh for h in vm_hosts)
    assert scan_host_key(first.address, first.port) == first.host_key

    for pinned in (second.host_key, _random_ed25519_public_key()):
        with pytest.raises(HostError) as refused:
            first.connection(host_key=pinned).run(["true"])
        assert not refused.value.transient
        assert "refusing" in str(refused.value)

        driver = QemuDriver(first.connection(host_key=pinned), base_dir=str(first.base_dir))
        with pytest.raises(HostError) as refused:
            driver.inspect("vm-alpha")
        assert not refused.value.transient

    with first.connection() as ssh:
        assert ssh.run(["true"]).exit_status == 0


def _random_ed25519_public_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )


HOSTILE = 'x\'; touch /tmp/pwned; echo "$(touch /tmp/pwned)" `touch /tmp/pwned` \n rm -rf / #'


def test_shell_metacharacters_create_nothing_unexpected(
    vm_hosts: list[VmHost], booted: BootedVms
) -> None:
    host = vm_hosts[0]
    pwned = Path("/tmp/pwned")
    pwned.unlink(missing_ok=True)
    before = set(os.listdir(host.ssh.base_dir))
    hostile_key = "ssh-ed25519 AAAA' ; touch /tmp/pwned; '\n$(touch /tmp/pwned) `id`"
    spec = vm_spec(HOSTILE, cluster_id="c; touch /tmp/pwned", egg_id="$(touch /tmp/pwned)")
    options = replace(
        host.options((80,), deny_outgoing=True),
        ssh_keys=(hostile_key,),
        kernel_args=host.options((80,), deny_outgoing=True).kernel_args
        + " corral_x=$(touch${IFS}/tmp/pwned);`touch /tmp/pwned`",
    )

    host.driver.ensure(spec, vm=options)
    observed = host.driver.power(HOSTILE, PowerSignal.START)
    assert observed.state is RuntimeState.RUNNING
    assert observed.labels[LABEL_WORKLOAD] == HOSTILE
    assert observed.labels[LABEL_CLUSTER] == "c; touch /tmp/pwned"
    assert {o.workload_id for o in host.driver.list_managed()} == {booted.alpha, HOSTILE}

    # The hostile text arrived verbatim where it belongs, and nowhere ran as shell.
    assert any("corral_x=$(touch${IFS}/tmp/pwned);`touch" in a for a in live_qemu_args(host))
    _, files = read_seed(host, HOSTILE)
    user_data = json.loads(files["user-data"].split("\n", 1)[1])
    assert user_data["ssh_authorized_keys"] == [hostile_key]
    assert json.loads(files["meta-data"])["instance-id"] == HOSTILE

    created = set(os.listdir(host.ssh.base_dir)) - before
    assert created == {workload_dir_name(HOSTILE)}
    assert sorted(os.listdir(host.ssh.base_dir / workload_dir_name(HOSTILE))) == [
        "console.log", "corral.json", "disk.qcow2", "qemu.pid", "qmp.sock", "seed.iso",
    ]  # fmt: skip
    ports = host.driver.forwarded_ports(HOSTILE)
    assert not set(ports.values()) & set(host.driver.forwarded_ports(booted.alpha).values())

    host.driver.remove(HOSTILE)
    assert host.driver.inspect(HOSTILE).state is RuntimeState.MISSING
    assert set(os.listdir(host.ssh.base_dir)) == before
    assert not pwned.exists()
    assert not list(Path("/").glob("pwned*")) and not list(Path("/tmp").glob("pwned*"))


def test_remove_leaves_no_process_and_no_file(vm_hosts: list[VmHost], booted: BootedVms) -> None:
    for host, workload_id in ((vm_hosts[0], booted.alpha), (vm_hosts[1], booted.beta)):
        folder = host.ssh.base_dir / workload_dir_name(workload_id)
        pid = last_qemu_pid(host, workload_id)
        host.driver.remove(workload_id)
        host.driver.remove(workload_id)  # missing is success

        assert host.driver.inspect(workload_id).state is RuntimeState.MISSING
        assert host.driver.list_managed() == []
        assert not folder.exists()
        assert os.listdir(host.ssh.base_dir) == []
        assert pid is None or not process_alive(pid)
        assert live_qemu_args(host) == []
        # Only sshd is left in the host's namespace: no QEMU, no QMP relay (socat).
        assert {process_name(p) for p in host.ssh.pids()} - {None} == {"sshd"}
        with pytest.raises(HostError, match="no VM"):
            host.driver.power(workload_id, PowerSignal.START)
