"""The command line that starts a VM under QEMU, as QemuDriver runs it on the host.

The process daemonizes and keeps its pidfile, QMP socket and serial console in the VM's
folder; the disk overlay and the cloud-init seed come from there too.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from infra.drivers.qemu.record import VmRecord, guest_hostname
from shared.errors import HostError
from shared.vm import is_image_name

DISK_DEVICE = "disk0"


@dataclass(frozen=True)
class QemuSetup:
    """How one host runs QEMU: the binary, machine type and accelerator, the address the
    forwarded ports bind to, the folder the base images, kernels and initrds are in, and
    whether its operator lets guests out (`guest_outgoing`; see LABEL_VM_OUTGOING)."""

    images_dir: str = "/var/lib/corral/images"
    qemu_binary: str = "qemu-system-x86_64"
    machine: str = "q35"
    accel: str = "kvm:tcg"
    bind_address: str = ""
    guest_outgoing: bool = False

    def image_path(self, name: str) -> str:
        """The host path of an image file name; a name that could leave the folder or
        inject an option is refused."""
        if not is_image_name(name):
            raise HostError(f"{name!r} is not an image file name")
        return posixpath.join(self.images_dir, name)


def qemu_command(record: VmRecord, folder: str, setup: QemuSetup) -> list[str]:
    """The argv for `record`'s VM, whose files are in `folder`, on a host set up as `setup`."""

    def path(name: str) -> str:
        return posixpath.join(folder, name)

    shape, vm = record.shape, record.vm
    forwards = "".join(
        f",hostfwd=tcp:{setup.bind_address}:{host}-:{guest}"
        for guest, host in sorted(record.ports.items())
    )
    # restrict=off lets the guest out, and QEMU's user networking then also maps
    # 10.0.2.2 to the host's loopback: only on hosts whose operator opted in.
    restrict = "off" if setup.guest_outgoing and not vm.deny_outgoing else "on"
    argv = [
        setup.qemu_binary,
        "-name", f"guest={guest_hostname(record.workload_id)}",
        "-machine", f"{setup.machine},accel={setup.accel}",
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
        argv += ["-kernel", setup.image_path(vm.kernel), "-append", vm.kernel_args]
        if vm.initrd is not None:
            argv += ["-initrd", setup.image_path(vm.initrd)]
    return argv
