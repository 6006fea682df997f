"""The command line that starts a VM under QEMU, as QemuDriver runs it on the host.

The process daemonizes and keeps its pidfile, QMP socket and serial console in the VM's
folder; the disk overlay and the cloud-init seed come from there too.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable

from shared.vm import VmRecord, guest_hostname

DISK_DEVICE = "disk0"


def qemu_command(
    record: VmRecord,
    folder: str,
    *,
    qemu_binary: str,
    machine: str,
    accel: str,
    bind_address: str,
    image_path: Callable[[str], str],
) -> list[str]:
    """The argv for `record`'s VM, whose files are in `folder`; `image_path` turns a
    kernel or initrd file name into its path on the host."""

    def path(name: str) -> str:
        return posixpath.join(folder, name)

    shape, vm = record.shape, record.vm
    forwards = "".join(
        f",hostfwd=tcp:{bind_address}:{host}-:{guest}"
        for guest, host in sorted(record.ports.items())
    )
    restrict = "on" if vm.deny_outgoing else "off"
    argv = [
        qemu_binary,
        "-name", f"guest={guest_hostname(record.workload_id)}",
        "-machine", f"{machine},accel={accel}",
        "-nodefaults", "-no-user-config", "-display", "none",
        "-daemonize", "-pidfile", path("qemu.pid"),
        "-qmp", f"unix:{path('qmp.sock')},server=on,wait=off",
        "-serial", f"file:{path('console.log')}",
        "-smp", str(shape.vcpus),
        "-m", str(shape.ram_mb),
        "-drive", f"file={path('disk.qcow2')},if=virtio,format=qcow2,id={DISK_DEVICE}",
        "-drive", f"file={path('seed.iso')},media=cdrom,format=raw,readonly=on,id=seed",
        "-netdev", f"user,id=n0,restrict={restrict}{forwards}",
        "-device", f"{vm.nic_model},netdev=n0",
    ]  # fmt: skip
    if vm.kernel is not None:
        argv += ["-kernel", image_path(vm.kernel), "-append", vm.kernel_args]
        if vm.initrd is not None:
            argv += ["-initrd", image_path(vm.initrd)]
    return argv
