"""What a VM needs beyond a `WorkloadSpec`, and the host-side record of one VM.

Plain data and arithmetic, no I/O: the qemu driver (`infra/drivers/qemu.py`) writes a
`VmRecord` as JSON next to each VM on its host, which is how it finds the VM again
(`inspect`, `list_managed`) and how it restarts it with the same devices and ports.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from shared.capacity import Resources
from shared.runtime import RuntimeState, WorkloadSpec

GUEST_SSH_PORT = 22
RECORD_FORMAT = 1

# File names inside images_dir: no slashes, no leading dot, no shell or QEMU option
# syntax (QEMU splits option values on commas).
_IMAGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
_SLUG_DROP = re.compile(r"[^A-Za-z0-9-]+")


def is_image_name(name: str) -> bool:
    return bool(_IMAGE_NAME.fullmatch(name)) and ".." not in name


# Host labels that place a VM host's folders and pick QEMU's accelerator (the driver
# factory reads them; host registration checks them).
LABEL_BASE_DIR = "corral.base_dir"
LABEL_IMAGES_DIR = "corral.images_dir"
LABEL_ACCEL = "corral.accel"
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


# Which keys of a workload's and an egg's `vm` field make the VM options: the egg gives
# the boot (kernel, initrd, kernel_args, nic_model), the workload what its owner asked.
EGG_VM_KEYS = ("kernel", "initrd", "kernel_args", "nic_model")
WORKLOAD_VM_KEYS = ("ssh_keys", "ports", "deny_outgoing")


def vm_options(egg_vm: Mapping[str, Any], workload_vm: Mapping[str, Any] | None) -> VmOptions:
    """The options a VM is created with, from its egg's `vm` and its workload's `vm`."""
    data = {k: egg_vm[k] for k in EGG_VM_KEYS if egg_vm.get(k) is not None}
    data |= {k: v for k, v in (workload_vm or {}).items() if k in WORKLOAD_VM_KEYS}
    return VmOptions.from_json(data)


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


def workload_dir_name(workload_id: str) -> str:
    """A folder name for a workload that is safe in any path, shell or QEMU option.

    Readable where the id is, and always unique through a digest of the whole id.
    """
    slug = _SLUG_DROP.sub("-", workload_id).strip("-")[:24] or "vm"
    digest = hashlib.sha256(workload_id.encode()).hexdigest()[:16]
    return f"{slug}-{digest}"


def guest_hostname(workload_id: str) -> str:
    slug = _SLUG_DROP.sub("-", workload_id).strip("-").lower()[:40].strip("-")
    return f"corral-{slug or 'vm'}"


def allocate_ports(
    guest_ports: Iterable[int], port_range: range, taken: Iterable[int]
) -> dict[int, int]:
    """Host ports for `guest_ports`: the lowest free ones in `port_range`, in order."""
    busy = set(taken)
    wanted = sorted(set(guest_ports))
    free = (p for p in port_range if p not in busy)
    allocated: dict[int, int] = {}
    for guest in wanted:
        host = next(free, None)
        if host is None:
            raise LookupError(f"no free host port left in {port_range.start}-{port_range.stop - 1}")
        allocated[guest] = host
    return allocated


def _spec_to_json(spec: WorkloadSpec) -> dict[str, Any]:
    data = asdict(spec)
    data["command"] = list(spec.command) if spec.command is not None else None
    return data


def _spec_from_json(data: Mapping[str, Any]) -> WorkloadSpec:
    command = data.get("command")
    return WorkloadSpec(
        workload_id=str(data["workload_id"]),
        cluster_id=str(data["cluster_id"]),
        egg_id=str(data["egg_id"]),
        image=str(data["image"]),
        resources=Resources(**{k: int(v) for k, v in data["resources"].items()}),
        command=tuple(command) if command is not None else None,
        environment=dict(data.get("environment") or {}),
        stop_timeout=int(data.get("stop_timeout", 10)),
        name=str(data.get("name", "")),
    )


@dataclass(frozen=True)
class VmRecord:
    """Everything the host keeps about one VM (`corral.json` in its folder).

    `booted_with` is the shape of the running process, set when it was started;
    when it differs from the spec's, new memory or vCPUs wait for a restart.
    """

    spec: WorkloadSpec
    vm: VmOptions
    ports: dict[int, int]
    base_image: str
    base_format: str
    disk_mb: int
    booted_with: Shape | None = None

    @property
    def workload_id(self) -> str:
        return self.spec.workload_id

    @property
    def shape(self) -> Shape:
        return Shape.of(self.spec.resources)

    def with_spec(self, spec: WorkloadSpec, disk_mb: int) -> VmRecord:
        return replace(self, spec=spec, disk_mb=disk_mb)

    def booted(self) -> VmRecord:
        return replace(self, booted_with=self.shape)

    def to_json(self) -> bytes:
        body = {
            "format": RECORD_FORMAT,
            "workload_id": self.workload_id,
            "labels": self.spec.labels(),
            "spec": _spec_to_json(self.spec),
            "vm": self.vm.to_json(),
            "ports": {str(guest): host for guest, host in sorted(self.ports.items())},
            "base_image": self.base_image,
            "base_format": self.base_format,
            "disk_mb": self.disk_mb,
            "booted_with": asdict(self.booted_with) if self.booted_with else None,
        }
        return json.dumps(body, indent=2, sort_keys=True, ensure_ascii=True).encode() + b"\n"

    @classmethod
    def from_json(cls, raw: bytes) -> VmRecord:
        data = json.loads(raw)
        if data.get("format") != RECORD_FORMAT:
            raise ValueError(f"unknown VM record format {data.get('format')!r}")
        booted = data.get("booted_with")
        return cls(
            spec=_spec_from_json(data["spec"]),
            vm=VmOptions.from_json(data["vm"]),
            ports={int(guest): int(host) for guest, host in data["ports"].items()},
            base_image=str(data["base_image"]),
            base_format=str(data["base_format"]),
            disk_mb=int(data["disk_mb"]),
            booted_with=Shape(**booted) if booted else None,
        )


def qmp_state(status: str) -> RuntimeState:
    """A QMP `query-status` answer as an engine state: anything not running or shut
    down (paused, suspended, in migration, ...) counts as paused."""
    return {"running": RuntimeState.RUNNING, "shutdown": RuntimeState.STOPPED}.get(
        status, RuntimeState.PAUSED
    )
