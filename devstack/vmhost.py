"""`make run`'s VM host: an sshd in a network namespace of its own, where Corral runs
QEMU (TCG) over SSH, as it would on a remote VM host.

Everything lives in one folder (`.corral/vmhost/`): the sshd's config and its keys
(made once, so a kept table's host record stays valid), `images/` (links to the
kernel, busybox initramfs and base disk built by devstack/guest_images.py, cached in
`.corral/vm-images/`) and `vms/` (the VMs' disks, consoles and records). QEMU's
sockets live beside a VM's disk and a unix socket path has at most 107 bytes, so
the host is registered with a short link to `vms/`, `/tmp/corral-vms-<hash>`.

The namespace and its link are named after the folder, so the next run finds what a
killed one left (`prepare_vm_host` deletes it, with the QEMU processes in it, before
making a fresh one), and two state directories never share one.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

from devstack.guest_images import BASE_DISK_NAME, build_vm_images
from devstack.processes import Child
from devstack.sshd_host import (
    SSH_PORT,
    Namespace,
    SshdFiles,
    check_tools,
    delete_namespace,
    free_subnet,
    make_namespace,
    prepare_sshd,
    start_sshd,
)

SUBNET_PREFIX = "10.215"  # the tests' hosts use 10.213, private dockerds 10.214
PORT_RANGE = (20000, 20099)  # host ports forwarded to guests, inside the namespace
ACCEL = "tcg"
DEMO_IMAGE = BASE_DISK_NAME


@dataclass(frozen=True)
class VmHost:
    namespace: Namespace
    sshd: SshdFiles
    folder: Path

    @property
    def vms_dir(self) -> Path:
        return self.folder / "vms"

    @property
    def base_dir(self) -> Path:
        """The VMs' folder as the host is registered with it: a short link to `vms_dir`."""
        return Path(f"/tmp/corral-vms-{_digest(self.folder)}")

    @property
    def images_dir(self) -> Path:
        return self.folder / "images"

    @property
    def ssh_address(self) -> str:
        return f"ssh://root@{self.namespace.address}:{SSH_PORT}"

    def start_sshd(self, log_path: Path, append_log: bool = False) -> Child:
        return start_sshd(
            self.namespace.name,
            self.sshd,
            self.namespace.address,
            name=f"sshd (VM host, netns {self.namespace.name})",
            log_path=log_path,
            append_log=append_log,
        )

    def remove(self) -> None:
        """Delete the namespace with whatever still runs in it (QEMU)."""
        delete_namespace(self.namespace.name, self.namespace.root_link)
        self.base_dir.unlink(missing_ok=True)


def _digest(folder: Path) -> str:
    return hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:8]


def namespace_names(folder: Path) -> tuple[str, str]:
    """The namespace and root link names of the VM host kept in `folder` (a link name
    has at most 15 characters)."""
    digest = _digest(folder)
    return f"corral-run-{digest}", f"crr{digest}"


def prepare_vm_host(folder: Path, images_cache: Path, *, keep_vms: bool) -> VmHost:
    """Everything but the sshd process: the guest images (built once into
    `images_cache`), a fresh namespace (a killed run's is deleted first) and the
    sshd's files. Without `keep_vms`, the VMs of an earlier run go too (the table
    that knew them is gone). StartupError when QEMU, the kernel, busybox, sshd or
    root is missing."""
    check_tools()
    images = build_vm_images(images_cache)
    name, root_link = namespace_names(folder)
    delete_namespace(name, root_link)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    subnet_file = folder / "subnet"  # the same address again when it is free
    preferred = int(subnet_file.read_text()) if subnet_file.exists() else None
    third = free_subnet(SUBNET_PREFIX, preferred)
    subnet_file.write_text(f"{third}\n")
    try:
        namespace = make_namespace(name, root_link, SUBNET_PREFIX, third)
    except BaseException:
        delete_namespace(name, root_link)
        raise
    host = VmHost(namespace, prepare_sshd(folder / "sshd", namespace.address), folder)
    shutil.rmtree(host.images_dir, ignore_errors=True)  # links into an older cache, maybe
    images.install_into(host.images_dir)
    if not keep_vms:
        shutil.rmtree(host.vms_dir, ignore_errors=True)
    host.vms_dir.mkdir(exist_ok=True)
    host.base_dir.unlink(missing_ok=True)
    host.base_dir.symlink_to(host.vms_dir, target_is_directory=True)
    return host
