"""What workers ask of a host, and what a host reports back. Plain data, no I/O."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from enum import StrEnum

from shared.allocations import Allocation
from shared.capacity import Resources


class RuntimeState(StrEnum):
    """What the engine says a workload is doing."""

    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    MISSING = "missing"


# Labels (docker) / metadata (qemu) that tie a host object to its workload.
LABEL_WORKLOAD = "io.corral.workload"
LABEL_CLUSTER = "io.corral.cluster"
LABEL_EGG = "io.corral.egg"
LABEL_MANAGED = "io.corral.managed"
# What the reconciler needs to adopt a workload the table lost: its name, resources and
# restart policy (`never` when absent: made before the label was).
LABEL_NAME = "io.corral.name"
LABEL_RESOURCES = "io.corral.resources"
LABEL_RESTART = "io.corral.restart"
# A digest of what a container is made from (egg, image, command, environment): an update
# recreates the container when it differs, and only then.
LABEL_CONFIG = "io.corral.config"
# The published ports, `host:container,...`: a change of them needs a new container.
LABEL_PORTS = "io.corral.ports"


def runtime_name(workload_id: str) -> str:
    """The engine-side name of a workload: derived from its id, never from the user's name."""
    return f"corral-{workload_id}"


def cluster_network(cluster_id: str) -> str:
    """The engine-side network of a cluster's workloads on a host (one per host)."""
    return f"corral-net-{cluster_id}"


def published_ports(allocations: tuple[Allocation, ...]) -> str:
    """What LABEL_PORTS holds for these allocations."""
    return ",".join(f"{a.port}:{a.container_port}" for a in allocations)


def allocations_published(label: str, ip: str) -> tuple[Allocation, ...]:
    """The allocations LABEL_PORTS says a container publishes (to adopt it back); a
    label that is not `published_ports`' gives ValueError."""
    pairs = [part.split(":") for part in label.split(",") if part]
    return tuple(
        Allocation(ip=ip, port=int(host), container_port=int(inside), primary=i == 0)
        for i, (host, inside) in enumerate(pairs)
    )


def data_volume_name(workload_id: str) -> str:
    """The engine-side name of a workload's persistent data volume."""
    return f"corral-data-{workload_id}"


DEFAULT_DATA_PATH = "/data"


@dataclass(frozen=True)
class HostInfo:
    """What a host's health probe reports."""

    images: tuple[str, ...] = ()


@dataclass(frozen=True)
class WorkloadSpec:
    """Everything a driver needs to converge one workload, and nothing user-facing."""

    workload_id: str
    cluster_id: str
    egg_id: str
    image: str
    resources: Resources
    command: tuple[str, ...] | None = None
    environment: dict[str, str] = field(default_factory=dict)
    stop_timeout: int = 10
    name: str = ""  # the user's name, kept as a label for adoption; never used by engines
    allocations: tuple[Allocation, ...] = ()  # host ports published, primary first
    # Where the workload's data volume is mounted; it outlives the container until removed.
    data_path: str = DEFAULT_DATA_PATH
    restart_policy: str = "never"  # the reconciler's (shared.models.RestartPolicy), a label

    @property
    def runtime_name(self) -> str:
        return runtime_name(self.workload_id)

    def labels(self) -> dict[str, str]:
        return {
            LABEL_MANAGED: "true",
            LABEL_WORKLOAD: self.workload_id,
            LABEL_CLUSTER: self.cluster_id,
            LABEL_EGG: self.egg_id,
            LABEL_NAME: self.name,
            LABEL_RESOURCES: json.dumps(dict(self.resources.items()), sort_keys=True),
            LABEL_CONFIG: self.config_digest,
            LABEL_PORTS: published_ports(self.allocations),
            LABEL_RESTART: self.restart_policy,
        }

    @property
    def config_digest(self) -> str:
        made_of = [self.egg_id, self.image, self.command, sorted(self.environment.items())]
        return hashlib.sha256(json.dumps(made_of).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Observed:
    """A workload as the engine sees it.

    `enforced` says, per resource name of the API (`cpu_cores`, `ram_mb`,
    `storage_mb`, `io`), whether the engine enforces the limit (True) or Corral
    only accounts for it (False).
    """

    workload_id: str
    state: RuntimeState
    runtime_id: str | None = None
    image: str | None = None
    enforced: dict[str, bool] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    # what its process runs with (read back to adopt it): the operator's to see only
    environment: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
