"""Backups of a VM through the tenant API: its disk streamed over the pinned SSH
connection into the backup store, and put back with the VM stopped and started around
it, on a real sshd host in a network namespace running real QEMU (TCG).

The guest never has to boot: a VM's data is its disk, written and read here through
its QEMU's monitor (`qemu-io` on the VM's own drive, as a guest's writes land in its
overlay). One VM does the whole round trip, to keep the suite short."""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from infra.drivers.qemu.command import DISK_DEVICE
from infra.drivers.qemu.driver import QemuDriver
from infra.drivers.qemu.record import workload_dir_name
from shared.runtime import RuntimeState
from tests.fixtures.corral import Api, Stack, module_stack
from tests.fixtures.netns import SshHost
from tests.fixtures.vm_images import VmImages
from tests.integration.vm.conftest import make_vm_egg, settle
from workers.hosts import check_hosts

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
KNOWN, DELETED = 0x5A, 0x00  # byte patterns over the disk's first MiB


@dataclass
class World:
    stack: Stack
    base_dir: Path
    backups: Path
    egg_id: str
    cluster_id: str

    @property
    def api(self) -> Api:
        return self.stack.api

    def disk(self, vm_id: str) -> Path:
        return self.base_dir / workload_dir_name(vm_id) / "disk.qcow2"

    def driver(self, vm_id: str) -> QemuDriver:
        """The worker's own driver for the VM's host."""
        repo = self.stack.deps.repo
        host = repo.hosts.get(repo.workloads.get(self.cluster_id, vm_id).host_id)
        driver = self.stack.ctx.drivers.for_host(host)
        assert isinstance(driver, QemuDriver)
        return driver

    def guest_io(self, vm_id: str, command: str) -> None:
        """What the guest's writes and reads do: `command` of qemu-io on the running VM's
        disk, through its QEMU's monitor. A read checks the bytes' pattern."""
        line = f'qemu-io {DISK_DEVICE} "{command}"'
        said = self.driver(vm_id).qmp(vm_id, "human-monitor-command", {"command-line": line})
        assert "fail" not in str(said).lower(), (command, said)


@pytest.fixture(scope="module")
def world(
    table_endpoint: str,
    redis_url: str,
    ssh_host_pair: tuple[SshHost, SshHost],
    vm_images: VmImages,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[World]:
    backups = tmp_path_factory.mktemp("vm-backups")
    ssh = ssh_host_pair[0]
    vm_images.install_into(ssh.images_dir)
    base_dir = ssh.root / "backup-vms"
    with module_stack(table_endpoint, redis_url, "vmbackups", backup_folder=str(backups)) as stack:
        api = stack.api
        host = api.admin(
            "POST",
            "/hosts",
            {
                "name": "vm-backups",
                "driver": "ssh",
                "address": f"ssh://{ssh.username}@{ssh.address}:{ssh.port}",
                "engines": ["qemu"],
                "capacity": {"cpu_cores": 2, "ram_mb": 512, "storage_mb": 4096},
                "labels": {
                    "corral.base_dir": str(base_dir),
                    "corral.images_dir": str(ssh.images_dir),
                    "corral.accel": "tcg",
                },
                "ssh_host_key": ssh.host_key,
                "ssh_private_key": ssh.client_key_pem,
                "port_range": [22600, 22699],
            },
        )
        assert host.status_code == 201, host.text
        assert set(check_hosts().values()) == {"ready"}  # records the host's images
        # the guest need not boot: a stop is QEMU's `quit` at once
        egg = make_vm_egg(api, "console=ttyS0", stop_timeout=0)
        cluster = api.make_cluster([egg["id"]], backups=2, cpu_cores=2, ram_mb=512)
        api.tenant_key = api.make_key(cluster["id"])
        world = World(stack, base_dir, backups, egg["id"], cluster["id"])
        try:
            yield world
        finally:
            for vm in api.tenant("GET", "/containers").json:
                api.tenant("DELETE", f"/containers/{vm['id']}")
            settle(stack.deps)


def _qemu_io(disk: Path, command: str) -> None:
    done = subprocess.run(
        ["qemu-io", "-r", "-f", "qcow2", "-c", command, str(disk)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "Pattern verification failed" not in done.stdout, (
        command,
        done.stdout,
        done.stderr,
    )


def _operation(world: World, resp: Any) -> dict[str, Any]:
    """Carry out the operation a 202 started; its final view."""
    assert resp.status_code == 202, resp.text
    settle(world.stack.deps)
    op_id = resp.json["operation"]["id"]
    return dict(world.api.tenant("GET", f"/operations/{op_id}").json)


def _status(world: World, vm_id: str) -> str:
    return str(world.api.tenant("GET", f"/containers/{vm_id}").json["status"])


def _backup(world: World, vm_id: str) -> dict[str, Any]:
    path = f"/containers/{vm_id}/backups"
    resp = world.api.tenant("POST", path)
    assert _operation(world, resp)["status"] == "succeeded"
    backup = world.api.tenant("GET", f"{path}/{resp.json['backup']['id']}").json
    assert backup["status"] == "ready", backup
    return dict(backup)


def _restore(world: World, vm_id: str, backup_id: str) -> dict[str, Any]:
    resp = world.api.tenant("POST", f"/containers/{vm_id}/backups/{backup_id}/restore")
    return _operation(world, resp)


def test_a_vm_disk_round_trip(world: World, tmp_path: Path) -> None:
    api = world.api
    created = api.tenant(
        "POST", "/containers", {"name": "vm", "egg_id": world.egg_id, "backups": 2}
    )
    vm_id = created.json["container"]["id"]
    assert _operation(world, created)["status"] == "succeeded"
    assert _status(world, vm_id) == "running"
    disk = world.disk(vm_id)

    # what the running VM wrote; a backup: the VM paused while its disk is copied
    world.guest_io(vm_id, f"write -P {KNOWN:#x} 0 1M")
    kept = _backup(world, vm_id)
    assert _status(world, vm_id) == "running"
    assert world.driver(vm_id).inspect(vm_id).state is RuntimeState.RUNNING  # resumed
    assert not (disk.parent / ".backup").exists()  # the copy went once streamed
    archive = api.tenant("GET", f"/containers/{vm_id}/backups/{kept['id']}/download").content
    assert len(archive) == kept["size_bytes"]
    assert hashlib.sha256(archive).hexdigest() == kept["checksum"]
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        assert tar.getnames() == ["disk.qcow2"]
        tar.extract("disk.qcow2", tmp_path, filter="data")
    _qemu_io(tmp_path / "disk.qcow2", f"read -P {KNOWN:#x} 0 1M")
    assert [b["id"] for b in api.tenant("GET", f"/containers/{vm_id}/backups").json] == [kept["id"]]

    # the data is deleted; the archive tampered with is refused, the disk not touched
    world.guest_io(vm_id, f"write -P {DELETED:#x} 0 1M")
    stored = next(world.backups.rglob(f"{kept['id']}.tar"))
    stored.write_bytes(archive + b"\0" * 512)
    refused = _restore(world, vm_id, kept["id"])
    assert (refused["status"], refused["error_code"]) == ("failed", "checksum_mismatch")
    assert _status(world, vm_id) == "running"
    world.guest_io(vm_id, f"read -P {DELETED:#x} 0 1M")
    stored.write_bytes(archive)

    # the restore: the VM stopped, its disk replaced, started again as it was
    restored = _restore(world, vm_id, kept["id"])
    assert restored["status"] == "succeeded", restored
    assert _status(world, vm_id) == "running"
    assert world.driver(vm_id).inspect(vm_id).state is RuntimeState.RUNNING
    world.guest_io(vm_id, f"read -P {KNOWN:#x} 0 1M")
    assert not (disk.parent / ".restore").exists()
    backup = api.tenant("GET", f"/containers/{vm_id}/backups/{kept['id']}").json
    assert backup["status"] == "ready"
