"""The QEMU command line a VM host runs: guests stay off the host's loopback unless
the host's operator opted in (issue 12, defect 10), and folder paths are whole-string
checks."""

from __future__ import annotations

from typing import cast

import pytest

from infra.drivers.qemu.command import QemuSetup, qemu_command
from infra.drivers.qemu.driver import QemuDriver
from infra.drivers.qemu.record import VmRecord
from infra.drivers.ssh.connection import SshConnection
from shared.capacity import Resources
from shared.runtime import WorkloadSpec
from shared.vm import VmOptions


def netdev_of(setup: QemuSetup, deny_outgoing: bool) -> str:
    spec = WorkloadSpec(
        workload_id="vm-1",
        cluster_id="c",
        egg_id="e",
        image="base.qcow2",
        resources=Resources(cpu_centi=100, ram_mb=128, storage_mb=64),
    )
    record = VmRecord(
        spec=spec,
        vm=VmOptions(ports=(80,), deny_outgoing=deny_outgoing),
        ports={22: 22000, 80: 22001},
        base_image="base.qcow2",
        base_format="qcow2",
        disk_mb=64,
    )
    argv = qemu_command(record, "/srv/vms/vm-1", setup)
    return argv[argv.index("-netdev") + 1]


@pytest.mark.parametrize("deny_outgoing", [False, True])
def test_guests_are_restricted_unless_the_host_opted_in(deny_outgoing: bool) -> None:
    netdev = netdev_of(QemuSetup(), deny_outgoing)
    assert ",restrict=on," in netdev
    assert "hostfwd=tcp::22000-:22" in netdev  # forwarded ports still answer


def test_an_opted_in_host_lets_out_only_the_vms_that_did_not_deny_it() -> None:
    assert ",restrict=off," in netdev_of(QemuSetup(guest_outgoing=True), deny_outgoing=False)
    assert ",restrict=on," in netdev_of(QemuSetup(guest_outgoing=True), deny_outgoing=True)


@pytest.mark.parametrize("folder", ["/srv/vms\n", "relative", "/srv/../etc", "/srv/vms;rm"])
def test_folders_are_checked_as_whole_strings(folder: str) -> None:
    with pytest.raises(ValueError):
        QemuDriver(cast(SshConnection, None), base_dir=folder)
