"""Domain records as the table holds them. Frozen; the repository maps them to items."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from shared.allocations import LOCAL_ADDRESS, Allocation
from shared.capacity import Resources
from shared.errors import Failure
from shared.health import Health, HostLoad
from shared.images import SealedRegistryAuth
from shared.keys import KeyScope
from shared.runtime import DEFAULT_DATA_PATH
from shared.states import OperationKind, OperationStatus, PowerSignal, WorkloadStatus
from shared.variables import EggVariable
from shared.vm import VmBoot, WorkloadVm


class ClusterStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    EXPIRED = "expired"


class ClusterType(StrEnum):
    """001's cluster types, a label the operator gives (Corral schedules them alike)."""

    MANAGED = "managed"
    SELF_MANAGED = "self_managed"
    LOCAL = "local"


@dataclass(frozen=True)
class ClusterConfig:
    """A cluster's settings beyond its plan (001's `config`). `default_egg_id` is the egg
    002's instances are created from (they name no egg); it must be allowed."""

    default_egg_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"default_egg_id": self.default_egg_id}


@dataclass(frozen=True)
class PlatformSettings:
    """What the operator sets for the whole platform: the cluster that 003's environments
    go to when their request names none."""

    default_cluster_id: str | None = None
    updated_at: datetime | None = None


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
    # Requests a minute each of the cluster's keys may make; None: the platform's default.
    requests_per_minute: int | None = None
    # Requests a minute all of the cluster's keys together may make; None: the default.
    cluster_requests_per_minute: int | None = None


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
    type: ClusterType = ClusterType.MANAGED
    description: str | None = None
    config: ClusterConfig = field(default_factory=ClusterConfig)
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
    vm: VmBoot = field(default_factory=VmBoot)  # qemu eggs: how their VMs boot
    variables: tuple[EggVariable, ...] = ()  # what tenants may (or operators do) set
    container_ports: tuple[int, ...] = ()  # fixed ports its image listens on, mapped in order
    data_path: str = DEFAULT_DATA_PATH  # where a container's data volume is mounted (and backed up)
    registry_auth: SealedRegistryAuth | None = None  # credentials for the image's registry


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
    port_range: tuple[int, int] | None = None  # where its workloads' ports come from
    public_address: str | None = None  # the IP or name clients reach its ports on
    load: HostLoad | None = None  # what its workloads use, as the collector last summed it
    version: int = 1

    @property
    def reached_at(self) -> str:
        """The address of its allocations: `public_address`, else this machine."""
        return self.public_address or LOCAL_ADDRESS


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
    failure: Failure | None = None  # set when the last operation failed
    enforced: dict[str, bool] = field(default_factory=dict)
    expires_at: datetime | None = None
    restart_policy: RestartPolicy = RestartPolicy.NEVER
    health: Health | None = None  # the collector's last measurement (None: never measured)
    vm: WorkloadVm | None = None  # VMs (engine qemu) only
    restart_needed: bool = False  # new memory or vCPUs wait for the running VM to restart
    # the tenant's values of its egg's user-editable variables (env name -> value)
    environment: dict[str, str] = field(default_factory=dict)
    # managed databases bound to it (their connection variables are in its environment)
    databases: tuple[str, ...] = ()
    database_count: int = 0  # tenant databases it holds, within its `databases` allocation
    allocations: tuple[Allocation, ...] = ()  # host ports held (containers), primary first
    backup_count: int = 0  # backups holding one of its `backups` slots (see shared.backups)
    version: int = 1


class OperationReason(StrEnum):
    """Why Corral itself started an operation (no reason: its owner asked)."""

    EXPIRED = "expired"  # the expiry sweep reaps a workload whose lease ran out
    LOST = "lost"  # the reconciler found it missing on its host
    DRIFT = "drift"  # the reconciler found its host running it in another state


@dataclass(frozen=True)
class OperationParams:
    """What an operation carries to its job beyond its kind; shown to clients as `params`.

    Which fields are set depends on the kind: an update's new `name`, `egg_id` or
    `environment` (then `recreate`) and `resources`; a power change's `signal` and
    `target`; a delete's `previous` status; `reason` when Corral started it itself
    (`was`: the status the table had before a repair); `env_id` when it is one of an
    env's; `host_id` of an adoption or an image operation, with its `image` (and
    `egg_id` whose registry credentials a pull uses); `backup_id` of a backup's
    operation (backup, restore, delete_backup); `database_id` of a tenant database's.
    """

    name: str | None = None
    egg_id: str | None = None
    recreate: bool = False
    resources: Resources | None = None
    signal: PowerSignal | None = None
    target: WorkloadStatus | None = None
    previous: WorkloadStatus | None = None
    reason: OperationReason | None = None
    was: WorkloadStatus | None = None
    env_id: str | None = None
    host_id: str | None = None
    environment: dict[str, str] | None = None  # an update's new variable values
    database_id: str | None = None  # a tenant database made, rotated or dropped first
    backup_id: str | None = None
    image: str | None = None  # an image operation's image

    def to_json(self) -> dict[str, Any]:
        """The fields that are set, by their API names (`previous` is `from`)."""
        data: dict[str, Any] = {
            "name": self.name,
            "egg_id": self.egg_id,
            "recreate": self.recreate or None,
            "resources": self.resources.to_api() if self.resources is not None else None,
            "signal": self.signal,
            "target": self.target,
            "from": self.previous,
            "reason": self.reason,
            "was": self.was,
            "env_id": self.env_id,
            "host_id": self.host_id,
            "environment": self.environment,
            "database_id": self.database_id,
            "backup_id": self.backup_id,
            "image": self.image,
        }
        return {
            key: str(value) if isinstance(value, StrEnum) else value
            for key, value in data.items()
            if value is not None
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OperationParams:
        def status(key: str) -> WorkloadStatus | None:
            return WorkloadStatus(data[key]) if data.get(key) is not None else None

        resources = data.get("resources")
        return cls(
            name=data.get("name"),
            egg_id=data.get("egg_id"),
            recreate=bool(data.get("recreate", False)),
            resources=Resources.from_api(resources) if resources is not None else None,
            signal=PowerSignal(data["signal"]) if data.get("signal") else None,
            target=status("target"),
            previous=status("from"),
            reason=OperationReason(data["reason"]) if data.get("reason") else None,
            was=status("was"),
            env_id=data.get("env_id"),
            host_id=data.get("host_id"),
            environment=dict(data["environment"]) if data.get("environment") else None,
            database_id=data.get("database_id"),
            backup_id=data.get("backup_id"),
            image=data.get("image"),
        )


# The cluster id under which operators' operations on hosts (image pulls and deletes)
# are kept: no cluster has it (cluster ids are UUIDs), so no tenant ever reads them.
FLEET_OPERATIONS = "fleet"


@dataclass(frozen=True)
class Operation:
    """One asynchronous change. Its id is the RQ job id."""

    id: str
    cluster_id: str
    workload_id: str
    kind: OperationKind
    params: OperationParams
    status: OperationStatus
    created_at: datetime
    updated_at: datetime
    failure: Failure | None = None  # set when the last operation failed
    started_at: datetime | None = None
    finished_at: datetime | None = None
    progress: str | None = None  # a short text while it runs (an image pull's percent)


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
    scope: KeyScope = field(default_factory=KeyScope)

    @property
    def is_operator(self) -> bool:
        return self.cluster_id is None
