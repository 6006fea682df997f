"""Domain records as the table holds them. Frozen; the repository maps them to items."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from shared.capacity import Resources
from shared.health import Health, HostLoad
from shared.states import OperationKind, OperationStatus, WorkloadStatus


class ClusterStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    EXPIRED = "expired"


class HostStatus(StrEnum):
    READY = "ready"
    NOT_READY = "not_ready"
    DRAINING = "draining"
    DOWN = "down"


class RestartPolicy(StrEnum):
    """What the reconciler does with a workload its host lost: recreate it, or mark error."""

    NEVER = "never"
    ALWAYS = "always"


class Engine(StrEnum):
    DOCKER = "docker"
    QEMU = "qemu"


class DriverKind(StrEnum):
    DOCKER = "docker"
    SSH = "ssh"


MAX_KEYS_PER_CLUSTER = 10


@dataclass(frozen=True)
class Plan:
    """A cluster's limits: pooled resources plus the number of containers."""

    name: str
    limits: Resources
    max_containers: int
    default_lifetime: int | None = None  # seconds given to workloads created without one
    max_lifetime: int | None = None  # the furthest ahead (seconds from now) a lease may reach


@dataclass(frozen=True)
class Cluster:
    id: str
    name: str
    status: ClusterStatus
    plan: Plan
    used: Resources
    container_count: int
    egg_ids: tuple[str, ...]
    key_count: int
    created_at: datetime
    updated_at: datetime
    version: int = 1

    @property
    def remaining(self) -> Resources:
        return self.plan.limits - self.used


@dataclass(frozen=True)
class Egg:
    id: str
    name: str
    engine: Engine
    image: str
    command: tuple[str, ...] | None
    environment: dict[str, str]
    minimum: Resources
    defaults: Resources
    stop_timeout: int
    created_at: datetime
    description: str = ""
    # qemu eggs: how their VMs boot (`kernel`, `initrd`, `kernel_args`; see shared.vm)
    vm: dict[str, Any] = field(default_factory=dict)


def host_status(health: HostStatus, draining: bool) -> HostStatus:
    """What a host shows: down or not_ready when unhealthy, else draining or ready."""
    if health != HostStatus.READY:
        return health
    return HostStatus.DRAINING if draining else HostStatus.READY


@dataclass(frozen=True)
class Host:
    """A machine that runs workloads. `status` is derived from `health` (measured by
    the health check) and `draining` (set by the operator); it is stored so that
    placement can condition on it."""

    id: str
    name: str
    driver: DriverKind
    address: str
    engines: tuple[Engine, ...]
    capacity: Resources
    used: Resources
    workload_count: int
    status: HostStatus
    labels: dict[str, str]
    created_at: datetime
    updated_at: datetime
    tls: dict[str, str] = field(default_factory=dict)
    last_heartbeat: datetime | None = None
    health: HostStatus = HostStatus.READY
    draining: bool = False
    images: tuple[str, ...] = ()
    ssh: dict[str, str] = field(default_factory=dict)
    port_range: tuple[int, int] | None = None
    load: HostLoad | None = None  # what its workloads use, as the collector last summed it
    version: int = 1


@dataclass(frozen=True)
class Workload:
    """A container, or a VM when its egg's engine is qemu."""

    id: str
    cluster_id: str
    name: str
    egg_id: str
    engine: Engine
    host_id: str
    resources: Resources
    status: WorkloadStatus
    created_at: datetime
    updated_at: datetime
    pending_op: str | None = None
    last_op: str | None = None
    error: str | None = None
    enforced: dict[str, bool] = field(default_factory=dict)
    expires_at: datetime | None = None
    restart_policy: RestartPolicy = RestartPolicy.NEVER
    health: Health | None = None  # the collector's last measurement (None: never measured)
    # VMs (engine qemu): what the owner asked (`ssh_keys`, `ports`, `deny_outgoing`,
    # `env_id`) and what the host gave (`address`, `forwarded_ports`); see shared.vm.
    vm: dict[str, Any] | None = None
    restart_needed: bool = False  # new memory or vCPUs wait for the running VM to restart
    version: int = 1


@dataclass(frozen=True)
class Operation:
    """One asynchronous change. Its id is the RQ job id."""

    id: str
    cluster_id: str
    workload_id: str
    kind: OperationKind
    params: dict[str, Any]
    status: OperationStatus
    created_at: datetime
    updated_at: datetime
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True)
class ApiKey:
    """A bearer key. Only its hash is stored; `prefix` is the first characters, for display."""

    id: str
    cluster_id: str | None  # None for operator keys
    name: str
    prefix: str
    key_hash: str
    created_at: datetime
    last_used_at: datetime | None = None
    revoked: bool = False

    @property
    def is_operator(self) -> bool:
        return self.cluster_id is None
