"""The host-side record of one VM (`corral.json` in its folder) and the names derived
from a workload id.

`QemuDriver` writes a `VmRecord` as JSON next to each VM on its host, which is how it
finds the VM again (`inspect`, `list_managed`) and how it restarts it with the same
devices and ports.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from shared.capacity import Resources
from shared.runtime import RuntimeState, WorkloadSpec
from shared.vm import Shape, VmOptions

RECORD_FORMAT = 1
_SLUG_DROP = re.compile(r"[^A-Za-z0-9-]+")


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
        restart_policy=str(data.get("restart_policy", "never")),
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
