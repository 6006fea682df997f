"""What a VM needs beyond a `WorkloadSpec`: its options, its shape, and the checks on the
names and addresses a VM host is registered with.

Plain data and arithmetic, no I/O. The host-side record of a VM lives with the QEMU
driver (`infra/drivers/qemu/record.py`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from shared.capacity import Resources

GUEST_SSH_PORT = 22

# File names inside images_dir: no slashes, no leading dot, no shell or QEMU option
# syntax (QEMU splits option values on commas).
_IMAGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")


def is_image_name(name: str) -> bool:
    return bool(_IMAGE_NAME.fullmatch(name)) and ".." not in name


# Host labels that place a VM host's folders and pick QEMU's accelerator (the driver
# factory reads them; host registration checks them).
LABEL_BASE_DIR = "corral.base_dir"
LABEL_IMAGES_DIR = "corral.images_dir"
LABEL_ACCEL = "corral.accel"
# QEMU user networking cannot let a guest out without also letting it reach the VM
# host's loopback (as 10.0.2.2). Guests get no outgoing network (`restrict=on`) unless
# the operator opts the host in with this label set to `allow`; then a VM's own
# `deny_outgoing` still cuts it off.
LABEL_VM_OUTGOING = "corral.vm_outgoing"
VM_OUTGOING_ALLOWED = "allow"
_PLAIN_FOLDER = re.compile(r"/[A-Za-z0-9/._-]+")
_ACCEL = re.compile(r"[a-z]+(:[a-z]+)*")


def is_plain_folder(path: str) -> bool:
    """An absolute path without `..`, safe in any command line or QEMU option."""
    return bool(_PLAIN_FOLDER.fullmatch(path)) and "/../" not in f"{path}/"


def is_accel(text: str) -> bool:
    """A QEMU accelerator list such as `kvm:tcg`."""
    return bool(_ACCEL.fullmatch(text))


# `<type> <base64> [comment]` on one line: what an authorized_keys line holds.
_PUBLIC_KEY = re.compile(
    r"[a-z0-9][a-z0-9@.-]{2,63} [A-Za-z0-9+/]+={0,3}( [^\x00-\x1f\x7f]{0,1024})?"
)


def is_public_key_line(text: str) -> bool:
    """An OpenSSH public key as one line (its data is not decoded here)."""
    return len(text) <= 16384 and bool(_PUBLIC_KEY.fullmatch(text))


@dataclass(frozen=True)
class SshAddress:
    """Where a VM host's sshd listens: `ssh://user@host:port` (user root, port 22 by default)."""

    username: str
    hostname: str
    port: int


_SSH_ADDRESS = re.compile(
    r"^ssh://(?:(?P<user>[A-Za-z0-9_][A-Za-z0-9_.-]{0,31})@)?"
    r"(?P<host>[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::(?P<port>[0-9]{1,5}))?/?"
)


def parse_ssh_address(address: str) -> SshAddress:
    """`ssh://user@host:port` parsed; ValueError says what is wrong."""
    match = _SSH_ADDRESS.fullmatch(address)
    if match is None:
        raise ValueError("expected ssh://user@host:port")
    port = int(match.group("port") or 22)
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is outside 1-65535")
    return SshAddress(match.group("user") or "root", match.group("host").strip("[]"), port)


@dataclass(frozen=True)
class VmOptions:
    """The VM-only part of a workload: from the env request and the egg.

    `ports` are guest ports to expose; port 22 is always added. `kernel` and `initrd`
    (file names in the host's images folder) boot the kernel directly, with
    `kernel_args` as its command line; without them the VM boots from its disk.
    """

    ssh_keys: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()
    deny_outgoing: bool = False
    kernel: str | None = None
    initrd: str | None = None
    kernel_args: str = "console=ttyS0"
    nic_model: str = "virtio-net-pci"

    def __post_init__(self) -> None:
        for port in self.ports:
            if not 1 <= port <= 65535:
                raise ValueError(f"guest port {port} is outside 1-65535")
        for name in (self.kernel, self.initrd):
            if name is not None and not is_image_name(name):
                raise ValueError(f"{name!r} is not an image file name")
        if not re.fullmatch(r"[a-z0-9-]{1,40}", self.nic_model):
            raise ValueError(f"{self.nic_model!r} is not a NIC model")

    @property
    def guest_ports(self) -> tuple[int, ...]:
        return tuple(sorted({GUEST_SSH_PORT, *self.ports}))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VmOptions:
        return cls(
            ssh_keys=tuple(str(k) for k in data.get("ssh_keys", ())),
            ports=tuple(int(p) for p in data.get("ports", ())),
            deny_outgoing=bool(data.get("deny_outgoing", False)),
            kernel=data.get("kernel"),
            initrd=data.get("initrd"),
            kernel_args=str(data.get("kernel_args", "console=ttyS0")),
            nic_model=str(data.get("nic_model", "virtio-net-pci")),
        )


@dataclass(frozen=True)
class VmBoot:
    """How a qemu egg's VMs boot (an egg's `vm`): a kernel and initrd (file names in each
    host's images folder) started directly with `kernel_args`; without a kernel, from
    the disk. Unset fields take `VmOptions`' defaults."""

    kernel: str | None = None
    initrd: str | None = None
    kernel_args: str | None = None
    nic_model: str | None = None

    def to_json(self) -> dict[str, str]:
        return {key: value for key, value in asdict(self).items() if value is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VmBoot:
        return cls(**{f: str(data[f]) for f in cls.__dataclass_fields__ if data.get(f) is not None})


@dataclass(frozen=True)
class WorkloadVm:
    """The VM part of a workload (a workload's `vm`, engine qemu only): what its owner
    asked (`ssh_keys`, guest `ports`, `deny_outgoing`), the env it belongs to, the image
    it was made from, and what its host gave (`address`, `forwarded_ports`: guest port
    to host port)."""

    image: str | None = None
    ssh_keys: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()
    deny_outgoing: bool = False
    env_id: str | None = None
    address: str | None = None
    forwarded_ports: Mapping[int, int] = field(default_factory=dict)

    @property
    def guest_ports(self) -> tuple[int, ...]:
        """The guest ports forwarded to the host: the asked ones and always 22."""
        return tuple(sorted({GUEST_SSH_PORT, *self.ports}))

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "image": self.image,
            "ssh_keys": list(self.ssh_keys),
            "ports": list(self.ports),
            "deny_outgoing": self.deny_outgoing,
            "env_id": self.env_id,
            "address": self.address,
            "forwarded_ports": {str(g): h for g, h in sorted(self.forwarded_ports.items())} or None,
        }
        return {key: value for key, value in data.items() if value is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WorkloadVm:
        forwarded = data.get("forwarded_ports") or {}
        return cls(
            image=data.get("image"),
            ssh_keys=tuple(str(k) for k in data.get("ssh_keys") or ()),
            ports=tuple(int(p) for p in data.get("ports") or ()),
            deny_outgoing=bool(data.get("deny_outgoing", False)),
            env_id=data.get("env_id"),
            address=data.get("address"),
            forwarded_ports={int(g): int(h) for g, h in forwarded.items()},
        )


def vm_options(boot: VmBoot, workload_vm: WorkloadVm | None) -> VmOptions:
    """The options a VM is created with, from its egg's boot settings and what its
    owner asked."""
    asked = workload_vm or WorkloadVm()
    return VmOptions.from_json(
        boot.to_json()
        | {
            "ssh_keys": asked.ssh_keys,
            "ports": asked.ports,
            "deny_outgoing": asked.deny_outgoing,
        }
    )


@dataclass(frozen=True)
class Shape:
    """What a QEMU process is started with."""

    vcpus: int
    ram_mb: int

    @classmethod
    def of(cls, resources: Resources) -> Shape:
        """Whole vCPUs (a fraction of a core rounds up) and at least 64 MiB."""
        return cls(
            vcpus=max(1, math.ceil(resources.cpu_centi / 100)), ram_mb=max(64, resources.ram_mb)
        )
