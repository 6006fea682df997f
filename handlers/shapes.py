"""The shapes of the API's answers, as TypedDicts: what `handlers.views` builds, named
for the OpenAPI document (`handlers.openapi`). Responders declare which shape they
answer with (`handlers.declare.responds`); the functional tests check every answer
they receive against the document, so a view and its shape cannot drift apart.

Every object is closed (no field beyond those listed): a new field in a view needs
its line here, and then it is documented."""

from __future__ import annotations

from typing import Any, Literal, NotRequired

# pydantic reads TypedDicts from typing_extensions on Python < 3.12.
from typing_extensions import TypedDict

from shared.backups import BackupStatus
from shared.databases import DatabaseEngine, DatabaseHostHealth, DatabaseStatus
from shared.health import HealthState
from shared.models import ClusterStatus, ClusterType, DriverKind, Engine, HostStatus, RestartPolicy
from shared.states import OperationKind, OperationStatus, WorkloadStatus
from shared.variables import VariableType

# Timestamps leave the API as ISO 8601 in UTC with a Z (shared.clock.stamp).
Timestamp = str


class ResourcesView(TypedDict):
    cpu_cores: float
    ram_mb: int
    storage_mb: int
    io: int
    ports: int
    databases: int
    backups: int


class ClusterResourcesView(ResourcesView):
    containers: int


class PlanView(TypedDict):
    name: str
    limits: ClusterResourcesView
    default_lifetime: int | None
    max_lifetime: int | None
    # Requests a minute each of the cluster's keys may make (null: the platform default).
    requests_per_minute: int | None
    # Requests a minute all the cluster's keys together may make (null: the default).
    cluster_requests_per_minute: int | None


class ClusterView(TypedDict):
    id: str
    name: str
    status: ClusterStatus
    plan: PlanView
    totals: ClusterResourcesView
    used: ClusterResourcesView
    remaining: ClusterResourcesView
    egg_ids: list[str]
    created_at: Timestamp
    updated_at: Timestamp


class ClusterConfigView(TypedDict):
    default_egg_id: str | None


class OperatorClusterView(ClusterView):
    type: ClusterType
    description: str | None
    config: ClusterConfigView
    node_count: int
    running_tasks: int


class CapacityView(TypedDict):
    totals: ClusterResourcesView
    used: ClusterResourcesView


class VariableRulesView(TypedDict):
    type: VariableType
    required: bool
    pattern: str | None
    min: int | None
    max: int | None
    choices: list[str]


class EggVariableView(TypedDict):
    name: str
    env: str
    description: str
    default: str
    user_editable: bool
    rules: VariableRulesView


class EggView(TypedDict):
    id: str
    name: str
    description: str | None
    engine: Engine
    image: str
    command: list[str] | None
    environment: dict[str, str]
    minimum: ResourcesView
    defaults: ResourcesView
    stop_timeout: int
    variables: list[EggVariableView]
    container_ports: list[int]
    data_path: str
    created_at: Timestamp
    vm: NotRequired[dict[str, Any]]


class RegistryAuthView(TypedDict):
    username: str


class OperatorEggView(EggView):
    """An egg as operators see it: whose registry credentials it holds (never the
    password)."""

    registry_auth: RegistryAuthView | None


class TemplateParameterView(TypedDict):
    name: str
    type: str
    required: bool
    default: NotRequired[float]
    minimum: NotRequired[float]


class TemplateView(OperatorEggView):
    parameters: list[TemplateParameterView]


class HealthView(TypedDict):
    """002's health shape, plus `state`, `stale` and `reason`."""

    cpu_percent: float | None
    memory_mb: float | None
    disk_mb: float | None
    last_heartbeat: int | None
    uptime_secs: int | None
    state: HealthState
    stale: bool
    reason: str | None


class VmView(TypedDict):
    env_id: str | None
    ports: list[int]
    deny_outgoing: bool
    ssh_keys: list[str]
    address: str | None
    forwarded_ports: dict[str, int]


class AllocationView(TypedDict):
    """A host port the container holds: clients reach `ip:port`, which leads to
    `container_port` inside; the first is `primary`."""

    ip: str
    port: int
    primary: bool
    container_port: int


class ContainerView(TypedDict):
    id: str
    name: str
    egg_id: str
    engine: Engine
    status: WorkloadStatus
    resources: ResourcesView
    allocations: list[AllocationView]
    enforcement: dict[str, Literal["enforced", "accounted"]]
    pending_operation: str | None
    last_operation: str | None
    error: str | None
    error_code: str | None
    expires_at: Timestamp | None
    restart_policy: RestartPolicy
    environment: dict[str, str]
    health: HealthView
    created_at: Timestamp
    updated_at: Timestamp
    # VMs only (engine qemu)
    restart_needed: NotRequired[bool]
    vm: NotRequired[VmView]


class OperatorContainerView(ContainerView):
    cluster_id: str
    host_id: str | None
    error_detail: str | None


class OperationView(TypedDict):
    id: str
    kind: OperationKind
    container_id: str | None
    status: OperationStatus
    params: dict[str, Any]
    progress: str | None
    error: str | None
    error_code: str | None
    created_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None


class OperatorOperationView(OperationView):
    cluster_id: str
    error_detail: str | None


class AcceptedView(TypedDict):
    """202: the container as it is now, and the operation that carries the change out."""

    container: ContainerView
    operation: OperationView


class TemplateAcceptedView(AcceptedView):
    cluster_id: str


class BackupView(TypedDict):
    id: str
    container_id: str
    name: str | None
    status: BackupStatus
    size_bytes: int | None
    checksum: str | None
    last_operation: str | None
    error: str | None
    error_code: str | None
    created_at: Timestamp
    updated_at: Timestamp


class BackupAcceptedView(TypedDict):
    """202: the backup as it is now, and the operation that carries the change out."""

    backup: BackupView
    operation: OperationView


class KeyScopeView(TypedDict):
    # What the key may do: read, write, power, delete.
    verbs: list[str]
    # The containers and eggs it is limited to; null: any.
    container_ids: list[str] | None
    egg_ids: list[str] | None


class ApiKeyView(TypedDict):
    id: str
    name: str
    prefix: str
    masked: str
    cluster_id: str | None
    created_at: Timestamp
    last_used_at: Timestamp | None
    revoked: bool
    scope: KeyScopeView
    # When the key stops working (null: never); an expired key is refused like a
    # revoked one.
    expires_at: Timestamp | None
    # Only in the answer that creates the key: shown once.
    secret: NotRequired[str]


class HostLoadView(TypedDict):
    cpu_percent: float
    cpu_cores: float
    memory_mb: float
    disk_mb: float
    workloads: int
    measured_at: Timestamp
    stale: bool


class HostView(TypedDict):
    id: str
    name: str
    driver: DriverKind
    address: str
    engines: list[Engine]
    status: HostStatus
    health: HostStatus
    draining: bool
    labels: dict[str, str]
    port_range: list[int] | None
    public_address: str | None
    capacity: ResourcesView
    used: ResourcesView
    free: ResourcesView
    load: HostLoadView | None
    workload_count: int
    last_heartbeat: Timestamp | None
    created_at: Timestamp
    updated_at: Timestamp


class LogLineView(TypedDict):
    time: str | None
    stream: str
    line: str


class LogsView(TypedDict):
    container_id: str
    lines: list[LogLineView]
    truncated: bool


class VirtualMachineView(OperatorContainerView):
    env_id: str | None
    image: str | None
    cpu: int
    mem: int
    disk: int


class EnvironmentView(TypedDict):
    id: str
    cluster_id: str
    owner: str | None
    ssh_keys: list[str]
    lifetime: int | None
    status: str
    created_at: Timestamp
    updated_at: Timestamp
    expires_at: Timestamp | None
    vms: list[VirtualMachineView]


class EnvironmentAcceptedView(EnvironmentView):
    operations: list[OperatorOperationView]


# -- fleet (operator) ------------------------------------------------------------------


class FleetHostView(HostView):
    workloads: dict[str, int]


class FleetTotalsView(TypedDict):
    hosts: int
    capacity: ResourcesView
    used: ResourcesView
    free: ResourcesView
    workloads: dict[str, int]


class FleetStatusView(TypedDict):
    hosts: list[FleetHostView]
    totals: FleetTotalsView


class FleetCapacityView(TypedDict):
    cpu_cores: float
    ram_mb: int


class FleetLoadView(TypedDict):
    cpu_percent: float
    cpu_cores: float
    memory_mb: float
    disk_mb: float
    workloads: int
    hosts_measured: int


class FleetStatsView(TypedDict):
    clusters: int
    clusters_by_status: dict[str, int]
    nodes: int
    nodes_by_status: dict[str, int]
    eggs: int
    containers: int
    containers_by_status: dict[str, int]
    running_tasks: int
    capacity: FleetCapacityView
    load: FleetLoadView


class ImageView(TypedDict):
    image: str
    hosts: list[str]


class HostImagesView(TypedDict):
    id: str
    name: str
    images: list[str]
    checked_at: Timestamp | None


class FleetImagesView(TypedDict):
    images: list[ImageView]
    hosts: list[HostImagesView]


class ImageOperationView(TypedDict):
    operation: OperatorOperationView


class ImagePullView(TypedDict):
    """One operation per host."""

    operations: list[OperatorOperationView]


class ServiceHealthView(TypedDict):
    status: Literal["healthy", "unhealthy"]
    version: str
    checks: dict[str, str]


class DatabaseHostView(TypedDict):
    """A database host as operators see it: never its password."""

    id: str
    name: str
    engine: DatabaseEngine
    host: str
    port: int
    username: str
    max_databases: int
    database_count: int
    cluster_ids: list[str]
    version: str | None
    health: DatabaseHostHealth
    health_error: str | None
    checked_at: Timestamp | None
    created_at: Timestamp
    updated_at: Timestamp


class _DatabaseConnectionView(TypedDict):
    id: str
    name: str
    engine: DatabaseEngine
    version: str | None
    status: DatabaseStatus
    connection_host: str
    connection_port: int
    connection_user: str
    connection_database: str
    created_at: Timestamp
    updated_at: Timestamp


class ManagedDatabaseView(_DatabaseConnectionView):
    """001's managed database; `error` only when it failed. Never a password."""

    cluster_id: str
    app_id: str | None
    error: NotRequired[str]


class DatabaseBindingView(TypedDict):
    database: ManagedDatabaseView
    operation: OperationView


class TenantDatabaseView(_DatabaseConnectionView):
    """A container's database; `password` only in the answer that made or rotated it."""

    error: str | None
    password: NotRequired[str]


class TenantDatabaseAcceptedView(TypedDict):
    database: TenantDatabaseView
    operation: OperationView


class OperationAcceptedView(TypedDict):
    operation: OperationView


class PlatformSettingsView(TypedDict):
    default_cluster_id: str | None
    updated_at: Timestamp | None


class PlatformFeaturesView(TypedDict):
    token_login: bool
    cors: bool
    vms: bool
    environments: bool
    instances: bool


class PlatformConfigView(TypedDict):
    version: str
    features: PlatformFeaturesView
    api: dict[str, str]


class AuthStatusView(TypedDict):
    auth_enabled: bool
    token_login: bool
    methods: list[Literal["api_key", "token"]]


class TokenView(TypedDict):
    token: str
    token_type: Literal["Bearer"]
    scope: Literal["operator", "tenant"]
    key_id: str
    cluster_id: str | None
    expires_at: int
    expires_in: int


class CredentialView(TypedDict):
    valid: bool
    kind: Literal["token", "api_key"]
    scope: Literal["operator", "tenant"]
    key_id: str
    cluster_id: str | None
    expires_at: NotRequired[int]
    expires_in: NotRequired[int]


class InstanceView(TypedDict):
    """002's instance: its status in 002's words, times as unix seconds."""

    id: str
    name: str
    status: Literal["creating", "running", "paused", "stopped", "error"]
    region: str | None
    created_at: int
    updated_at: int
    health: HealthView


class InstancePowerView(TypedDict):
    status: Literal["paused", "restarted"]


class EventResourceView(TypedDict):
    kind: str
    id: str


class EventView(TypedDict):
    """One committed change. `id` is its cursor (an SSE event's `id:`)."""

    id: str
    sequence: int
    type: str
    resource: EventResourceView
    cluster_id: str | None
    actor: str
    time: Timestamp
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class EventPageView(TypedDict):
    """A page of events, oldest first; `cursor` is what `after` takes for the next."""

    events: list[EventView]
    cursor: str


class WebhookView(TypedDict):
    """An endpoint the events are POSTed to (`types` empty: every event)."""

    id: str
    cluster_id: str | None
    url: str
    types: list[str]
    status: Literal["active", "disabled"]
    disabled_reason: str | None
    created_at: Timestamp


class WebhookCreatedView(WebhookView):
    """The new endpoint and its signing secret, shown this once."""

    secret: str


class DeliveryAttemptView(TypedDict):
    event_id: str
    event_type: str
    at: Timestamp
    status_code: int | None
    delivered: bool
    error: str | None
