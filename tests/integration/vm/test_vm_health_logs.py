"""Health and logs of a VM through the API and the jobs, on a real sshd host in a network
namespace running real QEMU (TCG): the collector's numbers match the QEMU process, the
logs are the serial console, and a stopped VM reads stopped.

One VM is booted once for the module (a guest that prints its markers and then stays
quiet, so its console does not change under the tests) and the tests run in file order
against it: running, paused, logs, then stopped.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from infra.drivers.qemu.driver import QemuDriver
from infra.drivers.qemu.record import workload_dir_name
from infra.drivers.ssh.connection import CommandResult, SshConnection
from services.deps import Deps
from shared.health import console_lines
from shared.runtime import RuntimeState
from tests.fixtures.corral import Api, module_stack
from tests.fixtures.netns import NetnsLab, SshHost
from tests.fixtures.priority import while_serving
from tests.fixtures.vm_images import INITRD_NAME, KERNEL_NAME, VmImages
from tests.integration.vm.conftest import settle, wait_until
from workers import context
from workers.collector import collect_health
from workers.hosts import check_hosts

pytestmark = pytest.mark.integration

BOOT_TIMEOUT = 120.0
PORTS = (23000, 23099)
KIB = 1024
MIB = 1024 * KIB


@dataclass
class Observed:
    api: Api
    deps: Deps
    ssh: SshHost
    host_id: str
    vm_id: str

    @property
    def folder(self) -> Path:
        return self.ssh.root / "observed-vms" / workload_dir_name(self.vm_id)

    def console(self) -> bytes:
        try:
            return (self.folder / "console.log").read_bytes()
        except FileNotFoundError:
            return b""

    def qemu_pid(self) -> int:
        return int((self.folder / "qemu.pid").read_text())

    def health(self) -> dict[str, Any]:
        resp = self.api.tenant("GET", f"/containers/{self.vm_id}/health")
        assert resp.status_code == 200, resp.text
        return dict(resp.json)

    def logs(self, **params: str) -> dict[str, Any]:
        path = f"/containers/{self.vm_id}/logs"
        resp = while_serving(self.deps, lambda: self.api.tenant("GET", path, params=params))
        assert resp.status_code == 200, resp.text
        return dict(resp.json)

    def power(self, signal: str) -> None:
        resp = self.api.tenant("POST", f"/containers/{self.vm_id}/power", {"signal": signal})
        assert resp.status_code == 202, resp.text
        settle(self.deps)
        op = self.api.tenant("GET", f"/operations/{resp.json['operation']['id']}").json
        assert op["status"] == "succeeded", op


@pytest.fixture(scope="module")
def observed(
    table_endpoint: str, redis_url: str, netns_lab: NetnsLab, vm_images: VmImages
) -> Iterator[Observed]:
    with module_stack(table_endpoint, redis_url, "vmobs") as stack:
        yield from _observed_vm(stack.api, stack.deps, netns_lab, vm_images)


def _observed_vm(
    api: Api, deps: Deps, netns_lab: NetnsLab, vm_images: VmImages
) -> Iterator[Observed]:
    vm_id = None
    try:
        ssh = netns_lab.add_host()
        vm_images.install_into(ssh.images_dir)
        resp = api.admin(
            "POST",
            "/hosts",
            {
                "name": "observed",
                "driver": "ssh",
                "address": f"ssh://{ssh.username}@{ssh.address}:{ssh.port}",
                "engines": ["qemu"],
                "capacity": {"cpu_cores": 4, "ram_mb": 1024, "storage_mb": 4096},
                "labels": {
                    "corral.base_dir": str(ssh.root / "observed-vms"),
                    "corral.images_dir": str(ssh.images_dir),
                    "corral.accel": "tcg",
                },
                "ssh_host_key": ssh.host_key,
                "ssh_private_key": ssh.client_key_pem,
                "port_range": list(PORTS),
            },
        )
        assert resp.status_code == 201, resp.text
        host_id = str(resp.json["id"])
        assert set(check_hosts().values()) == {"ready"}
        # No probe and no listeners: after its boot markers the guest prints nothing.
        egg = api.make_egg(
            name="quiet-vm",
            engine="qemu",
            image="base.qcow2",
            command=None,
            minimum={"cpu_cores": 1, "ram_mb": 64, "storage_mb": 32},
            defaults={"cpu_cores": 1, "ram_mb": 128, "storage_mb": 64},
            stop_timeout=20,
            vm={"kernel": KERNEL_NAME, "initrd": INITRD_NAME, "kernel_args": "console=ttyS0 quiet"},
        )
        cluster = api.make_cluster([egg["id"]], cpu_cores=4, ram_mb=1024, storage_mb=4096)
        api.tenant_key = api.make_key(cluster["id"])
        resp = api.tenant("POST", "/containers", {"name": "observed", "egg_id": egg["id"]})
        assert resp.status_code == 202, resp.text
        vm_id = str(resp.json["container"]["id"])
        settle(deps)
        found = Observed(api, deps, ssh, host_id, vm_id)
        assert api.tenant("GET", f"/containers/{vm_id}").json["status"] == "running"
        wait_until(
            lambda: b"CORRAL-BOOTED" in found.console(), BOOT_TIMEOUT, "the VM to boot", step=0.5
        )
        yield found
    finally:
        if vm_id is not None:
            with contextlib.suppress(Exception):
                api.tenant("DELETE", f"/containers/{vm_id}")
                settle(deps)


def driver_of(vm: Observed) -> QemuDriver:
    driver = context.current().drivers.for_host(vm.deps.repo.hosts.get(vm.host_id))
    assert isinstance(driver, QemuDriver)
    return driver


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def process_start(pid: int) -> float:
    """The process's start as unix seconds, from this machine's /proc (same kernel)."""
    ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    btime = next(
        int(line.split()[1])
        for line in Path("/proc/stat").read_text().splitlines()
        if line.startswith("btime ")
    )
    return btime + ticks / os.sysconf("SC_CLK_TCK")


class CountingConnection(SshConnection):
    """Counts remote commands and file reads."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands: list[str] = []
        self.reads = 0

    def run(self, argv: Any, timeout: float | None = None, **kwargs: Any) -> CommandResult:
        self.commands.append(argv[0])
        return super().run(argv, timeout, **kwargs)

    def get_bytes(self, remote_path: str) -> bytes:
        self.reads += 1
        return super().get_bytes(remote_path)


# -- a running VM -----------------------------------------------------------------------


def test_collector_measures_the_running_vm_from_its_qemu_process(observed: Observed) -> None:
    started = time.monotonic()
    first = collect_health()
    time.sleep(1.0)
    second = collect_health()
    assert time.monotonic() - started < 10
    assert first["measured"] == second["measured"] == 1 and second["unknown"] == {}, second

    health = observed.health()
    pid = observed.qemu_pid()
    assert health["state"] == "running" and health["stale"] is False, health
    assert health["reason"] is None
    assert abs(health["last_heartbeat"] - time.time()) < 30
    expected_uptime = time.time() - process_start(pid)
    assert health["uptime_secs"] > 0
    assert abs(health["uptime_secs"] - expected_uptime) <= 3, (health, expected_uptime)
    rss = rss_mib(pid)
    assert health["memory_mb"] > 0
    assert abs(health["memory_mb"] - rss) <= max(8, rss / 10), (health, rss)
    assert 0 <= health["cpu_percent"] < 400, health

    host = observed.api.admin("GET", f"/hosts/{observed.host_id}").json
    assert host["load"]["workloads"] == 1 and host["load"]["stale"] is False
    assert host["load"]["memory_mb"] == health["memory_mb"]


def test_a_sample_is_one_remote_command_with_the_process_counters(observed: Observed) -> None:
    ssh = observed.ssh
    connection = CountingConnection(
        ssh.address, ssh.port, ssh.username, ssh.client_key_pem, ssh.host_key
    )
    with connection:
        driver = QemuDriver(
            connection,
            base_dir=str(ssh.root / "observed-vms"),
            images_dir=str(ssh.images_dir),
            port_range=range(PORTS[0], PORTS[1] + 1),
            accel="tcg",
        )
        assert driver.stats([]) == {}
        assert connection.commands == []
        first = driver.stats([observed.vm_id, "no-such-vm"])
        second = driver.stats([observed.vm_id])
        assert connection.commands == ["sh", "sh"] and connection.reads == 0

    assert set(first) == {observed.vm_id}
    a, b = first[observed.vm_id], second[observed.vm_id]
    assert a.state is b.state is RuntimeState.RUNNING
    assert b.sampled_ns > a.sampled_ns and b.cpu_ns >= a.cpu_ns > 0
    # One QEMU process: the same start in both samples (the collector's CPU delta needs it).
    assert a.started_ns == b.started_ns and a.started_ns is not None
    assert abs(a.started_ns / 1e9 - process_start(observed.qemu_pid())) <= 1
    assert abs(b.sampled_ns / 1e9 - time.time()) < 30
    overlay = (observed.folder / "disk.qcow2").stat()
    assert b.disk_bytes > 0
    assert abs(b.disk_bytes - overlay.st_blocks * 512) <= 4 * KIB


def test_a_busy_monitor_costs_a_few_seconds_and_reads_running(observed: Observed) -> None:
    """QEMU serves one QMP client at a time: while a job holds the monitor, a sample
    gives up on it after a few seconds of silence and reports the live process."""
    socket_path = str(observed.folder / "qmp.sock")
    with (
        observed.ssh.connection() as ssh,
        ssh.stream(["socat", "-", f"UNIX-CONNECT:{socket_path}"], timeout=15) as held,
    ):
        assert b'"QMP"' in held.readline()  # this client has the monitor
        started = time.monotonic()
        sample = driver_of(observed).stats([observed.vm_id])[observed.vm_id]
        elapsed = time.monotonic() - started
    assert sample.state is RuntimeState.RUNNING and sample.memory_bytes > 0
    assert 2 <= elapsed < 8, elapsed


def test_a_paused_vm_reads_paused(observed: Observed) -> None:
    observed.power("pause")
    try:
        collect_health()
        health = observed.health()
        assert health["state"] == "paused" and health["cpu_percent"] == 0, health
        assert health["memory_mb"] > 0 and health["uptime_secs"] > 0
    finally:
        observed.power("resume")
    collect_health()
    assert observed.health()["state"] == "running"


# -- logs -------------------------------------------------------------------------------


def test_logs_are_the_serial_console_with_tail_honoured(observed: Observed) -> None:
    console = observed.console()
    body = observed.logs(tail="10000")
    texts = [line["line"] for line in body["lines"]]
    assert "CORRAL-BOOTED" in texts and any(t.startswith("CORRAL-NET ") for t in texts)
    assert texts == [line.text for line in console_lines(console, 10_000)]
    assert body["truncated"] is False and body["container_id"] == observed.vm_id
    assert {line["stream"] for line in body["lines"]} == {"console"}
    assert {line["time"] for line in body["lines"]} == {None}  # the console has no clock

    last = [line["line"] for line in observed.logs(tail="1")["lines"]]
    assert len(texts) > 1 and last == texts[-1:] == ["CORRAL-BOOTED"]
    # Without timestamps `since` cannot filter: the tail is answered all the same.
    assert [
        line["line"]
        for line in observed.logs(tail="1", since=str(int(time.time()) + 3600))["lines"]
    ] == last

    driver = driver_of(observed)
    assert driver.logs("no-such-vm", 10) == []
    assert driver.logs(observed.vm_id, 0) == []


# -- stopped ----------------------------------------------------------------------------


def test_a_stopped_vm_reads_stopped_and_keeps_its_last_console(observed: Observed) -> None:
    observed.power("stop")
    collect_health()
    health = observed.health()
    assert health["state"] == "stopped" and health["stale"] is False, health
    assert health["cpu_percent"] == 0 and health["memory_mb"] == 0
    assert health["uptime_secs"] == 0

    texts = [line["line"] for line in observed.logs(tail="2")["lines"]]
    assert len(texts) == 2 and "CORRAL-POWEROFF" in texts, texts
