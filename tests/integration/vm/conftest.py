"""Two sshd hosts in network namespaces, each with a QemuDriver, and two booted VMs.

Booting a guest under TCG takes seconds, so the VMs are made once per module and the
tests in `test_qemu_driver.py` run in file order against them.
"""

from __future__ import annotations

import contextlib
import io
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pycdlib
import pytest

from infra.drivers.qemu.driver import QemuDriver
from services.deps import Deps
from shared.capacity import Resources
from shared.runtime import RuntimeState, WorkloadSpec
from shared.states import PowerSignal
from shared.vm import VmOptions
from tests.fixtures.corral import Api, run_jobs
from tests.fixtures.netns import SshHost
from tests.fixtures.vm_images import INITRD_NAME, KERNEL_NAME, VmImages

PORT_RANGE = range(21000, 21100)
BOOT_TIMEOUT = 120.0
BOOTED = b"CORRAL-BOOTED"


class ProbeListener:
    """A TCP listener in the root namespace that records who connected (the guests'
    outbound probes arrive here through QEMU's user network and the host's link)."""

    def __init__(self, address: str) -> None:
        self._server = socket.create_server((address, 0))
        self._server.settimeout(0.2)
        self.address = address
        self.port: int = self._server.getsockname()[1]
        self.connections: list[tuple[str, bytes]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                data = b""
                with contextlib.suppress(OSError):
                    data = conn.recv(256)
                self.connections.append((peer[0], data))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._server.close()


@dataclass
class VmHost:
    ssh: SshHost
    driver: QemuDriver
    probe: ProbeListener
    workloads: list[str] = field(default_factory=list)

    def options(self, ports: tuple[int, ...], deny_outgoing: bool, **extra: str) -> VmOptions:
        listen = ",".join(str(p) for p in sorted({22, *ports}))
        args = [
            "console=ttyS0",
            "quiet",
            f"corral_listen={listen}",
            f"corral_probe={self.probe.address}:{self.probe.port}",
            *(f"{k}={v}" for k, v in extra.items()),
        ]
        return VmOptions(
            ssh_keys=(self.ssh.client_public_key,),
            ports=ports,
            deny_outgoing=deny_outgoing,
            kernel=KERNEL_NAME,
            initrd=INITRD_NAME,
            kernel_args=" ".join(args),
        )


def vm_spec(
    workload_id: str,
    *,
    cpu_centi: int = 100,
    ram_mb: int = 160,
    storage_mb: int = 64,
    cluster_id: str = "cluster-1",
    egg_id: str = "egg-tiny-vm",
) -> WorkloadSpec:
    return WorkloadSpec(
        workload_id=workload_id,
        cluster_id=cluster_id,
        egg_id=egg_id,
        image="base.qcow2",
        resources=Resources(cpu_centi=cpu_centi, ram_mb=ram_mb, storage_mb=storage_mb),
    )


def make_vm_egg(api: Api, kernel_args: str, stop_timeout: int) -> dict[str, Any]:
    """The tests' qemu egg: the busybox guest, its kernel and initramfs booted directly
    with `kernel_args`, on a disk made from base.qcow2."""
    return api.make_egg(
        name="tiny-vm",
        engine="qemu",
        image="base.qcow2",
        command=None,
        minimum={"cpu_cores": 1, "ram_mb": 64, "storage_mb": 32},
        defaults={"cpu_cores": 1, "ram_mb": 128, "storage_mb": 64},
        stop_timeout=stop_timeout,
        vm={"kernel": KERNEL_NAME, "initrd": INITRD_NAME, "kernel_args": kernel_args},
    )


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, step: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(step)


def wait_booted(host: VmHost, workload_id: str, timeout: float = BOOT_TIMEOUT) -> None:
    def booted() -> bool:
        if host.driver.inspect(workload_id).state is not RuntimeState.RUNNING:
            pytest.fail(f"VM {workload_id} stopped while booting: {console(host, workload_id)}")
        return BOOTED in host.driver.console_log(workload_id)

    wait_until(booted, timeout, f"{workload_id} to boot")


def console(host: VmHost, workload_id: str) -> str:
    return host.driver.console_log(workload_id).decode(errors="replace")


def guest_hello(address: str, port: int, timeout: float = 30.0) -> bytes:
    """What the guest's listener answers on a forwarded port (retrying while it starts)."""
    deadline = time.monotonic() + timeout
    answer = b""
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((address, port), 3) as conn:
            conn.settimeout(3)
            answer = conn.recv(256)
            if answer:
                return answer
        time.sleep(0.5)
    return answer


@pytest.fixture(scope="module")
def vm_hosts(
    ssh_host_pair: tuple[SshHost, SshHost],
    vm_images: VmImages,
) -> Iterator[list[VmHost]]:
    hosts: list[VmHost] = []
    for ssh in ssh_host_pair:
        vm_images.install_into(ssh.images_dir)
        driver = QemuDriver(
            ssh.connection(),
            base_dir=str(ssh.base_dir),
            images_dir=str(ssh.images_dir),
            port_range=PORT_RANGE,
            accel="tcg",
            guest_outgoing=True,  # as a host labelled corral.vm_outgoing=allow
        )
        hosts.append(VmHost(ssh, driver, ProbeListener(ssh.peer_address)))
    try:
        yield hosts
    finally:
        for host in hosts:
            with contextlib.suppress(Exception):
                for observed in host.driver.list_managed():
                    host.driver.remove(observed.workload_id)
            host.driver.close()
            host.probe.close()


@dataclass(frozen=True)
class BootedVms:
    alpha: str  # on host 0: 2 vCPUs, 192 MiB, port 80, outbound allowed
    beta: str  # on host 1: 1 vCPU, 160 MiB, ports 80 and 8080, outbound denied


@pytest.fixture(scope="module")
def booted(vm_hosts: list[VmHost]) -> BootedVms:
    first, second = vm_hosts
    vms = BootedVms(alpha="vm-alpha", beta="vm-beta")
    first.driver.ensure(
        vm_spec(vms.alpha, cpu_centi=150, ram_mb=192),
        vm=first.options((80,), deny_outgoing=False),
    )
    second.driver.ensure(
        vm_spec(vms.beta, cpu_centi=100, ram_mb=160),
        vm=second.options((80, 8080), deny_outgoing=True),
    )
    for host, workload_id in ((first, vms.alpha), (second, vms.beta)):
        observed = host.driver.power(workload_id, PowerSignal.START)
        assert observed.state is RuntimeState.RUNNING
    wait_booted(first, vms.alpha)
    wait_booted(second, vms.beta)
    return vms


def settle(deps: Deps, rounds: int = 5) -> None:
    """Run every queued job; one a transient host error left waiting for its retry is
    run again at once."""
    for _ in range(rounds):
        run_jobs(deps)
        scheduled = deps.jobs.queue.scheduled_job_registry
        waiting = scheduled.get_job_ids()
        if not waiting:
            return
        for job_id in waiting:
            scheduled.requeue(job_id)
    pytest.fail("jobs kept failing transiently")


def read_seed_iso(path: Path) -> tuple[str, dict[str, str]]:
    """A cloud-init seed ISO's volume label and its files, read back with pycdlib."""
    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    try:
        files = {}
        for name in ("user-data", "meta-data"):
            out = io.BytesIO()
            iso.get_file_from_iso_fp(out, rr_path=f"/{name}")
            files[name] = out.getvalue().decode()
        return iso.pvd.volume_identifier.decode().strip(), files
    finally:
        iso.close()
