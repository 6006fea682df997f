"""Operator request bodies (strict, like the tenant ones)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints, model_validator

from shared.databases import DatabaseEngine
from shared.images import parse_image
from shared.models import ClusterConfig, ClusterType, DriverKind, Engine
from shared.requests import (
    Cores,
    Id,
    Instant,
    Io,
    Lifetime,
    Name,
    RamMb,
    SmallCount,
    StorageMb,
    Strict,
    visible_text,
)
from shared.runtime import DEFAULT_DATA_PATH
from shared.variables import (
    INTEGER_LIMIT,
    MAX_PATTERN_LENGTH,
    MAX_VALUE_LENGTH,
    MAX_VARIABLES,
    EggVariable,
    VariableRules,
    VariableType,
    check_declaration,
)
from shared.vm import (
    LABEL_ACCEL,
    LABEL_BASE_DIR,
    LABEL_IMAGES_DIR,
    LABEL_VM_OUTGOING,
    VM_OUTGOING_ALLOWED,
    VmBoot,
    is_accel,
    is_image_name,
    is_plain_folder,
    parse_ssh_address,
)

NonNegative = Annotated[int, Field(ge=0)]


def _no_dot_segments(path: str) -> str:
    if any(part in (".", "..") for part in path.split("/")):
        raise ValueError("must not contain . or .. segments")
    return path


def _without_trailing_slash(path: object) -> object:
    return path.rstrip("/") if isinstance(path, str) else path


# An egg's data path: absolute, not the root, no `.` or `..`, plain path characters only
# (a trailing slash is dropped).
DataPath = Annotated[
    str,
    BeforeValidator(_without_trailing_slash),
    StringConstraints(min_length=2, max_length=255, pattern=r"^(/[A-Za-z0-9._@+-]+)+$"),
    AfterValidator(_no_dot_segments),
]
Text = Annotated[str, StringConstraints(max_length=4096)]
Label = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:/-]+$")
]


class PlanLimits(Strict):
    name: Name = "custom"
    cpu_cores: Annotated[Cores, Field(ge=0)] = 0
    ram_mb: Annotated[RamMb, Field(ge=0)] = 0
    storage_mb: Annotated[StorageMb, Field(ge=0)] = 0
    io: Annotated[int, Field(ge=0, le=1_000_000)] = 0
    ports: Annotated[int, Field(ge=0, le=65535)] = 0
    databases: Annotated[int, Field(ge=0, le=100_000)] = 0
    backups: Annotated[int, Field(ge=0, le=100_000)] = 0
    containers: Annotated[int, Field(ge=0, le=100_000)] = 0
    default_lifetime: Lifetime | None = None
    max_lifetime: Lifetime | None = None
    requests_per_minute: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    cluster_requests_per_minute: Annotated[int, Field(ge=1, le=10_000_000)] | None = None

    @model_validator(mode="after")
    def _default_within_max(self) -> PlanLimits:
        if (
            self.default_lifetime
            and self.max_lifetime
            and self.default_lifetime > self.max_lifetime
        ):
            raise ValueError("default_lifetime must not exceed max_lifetime")
        return self


class ClusterSettings(Strict):
    """001's cluster `config`: what Corral reads from it."""

    default_egg_id: Id | None = None

    def config(self) -> ClusterConfig:
        return ClusterConfig(default_egg_id=self.default_egg_id)


Description = Annotated[str, StringConstraints(max_length=1024)]


class ClusterCreate(Strict):
    name: Name
    plan: PlanLimits
    egg_ids: Annotated[list[Id], Field(max_length=200)] = []
    type: ClusterType = ClusterType.MANAGED
    description: Description | None = None
    config: ClusterSettings = ClusterSettings()


Verb = Literal["read", "write", "power", "delete"]
ScopedIds = Annotated[list[Id], Field(max_length=100)]


class KeyCreate(Strict):
    """A new key, optionally narrowed: to some verbs, some containers, some eggs, and
    an expiry. A field left out takes the minting key's own (a key never mints a key
    broader than itself)."""

    name: Name = "default"
    verbs: Annotated[list[Verb], Field(min_length=1, max_length=4)] | None = None
    container_ids: ScopedIds | None = None
    egg_ids: ScopedIds | None = None
    expires_at: Instant | None = None


class EggResources(Strict):
    cpu_cores: Annotated[Cores, Field(ge=0)] | None = None
    ram_mb: Annotated[RamMb, Field(ge=0)] | None = None
    storage_mb: Annotated[StorageMb, Field(ge=0)] | None = None
    io: Annotated[Io, Field(ge=0)] | None = None
    ports: Annotated[SmallCount, Field(ge=0)] | None = None
    databases: Annotated[SmallCount, Field(ge=0)] | None = None
    backups: Annotated[SmallCount, Field(ge=0)] | None = None


ImageFile = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
]


class EggVm(Strict):
    """How a qemu egg's VMs boot: a kernel and initrd (file names in each host's images
    folder) started directly with `kernel_args`; without a kernel, from the disk."""

    kernel: ImageFile | None = None
    initrd: ImageFile | None = None
    kernel_args: Annotated[str, StringConstraints(max_length=4096)] | None = None

    @model_validator(mode="after")
    def _plain(self) -> EggVm:
        for name in (self.kernel, self.initrd):
            if name is not None and not is_image_name(name):
                raise ValueError(f"{name!r} is not an image file name")
        if self.kernel_args is not None and any(ord(c) < 32 for c in self.kernel_args):
            raise ValueError("kernel_args must not contain control characters")
        if self.initrd is not None and self.kernel is None:
            raise ValueError("an initrd needs a kernel")
        return self

    def boot(self) -> VmBoot:
        return VmBoot(kernel=self.kernel, initrd=self.initrd, kernel_args=self.kernel_args)


class VariableRulesBody(Strict):
    type: VariableType = VariableType.STRING
    required: bool = False
    pattern: (
        Annotated[str, StringConstraints(min_length=1, max_length=MAX_PATTERN_LENGTH)] | None
    ) = None
    min: Annotated[int, Field(ge=-INTEGER_LIMIT, le=INTEGER_LIMIT)] | None = None
    max: Annotated[int, Field(ge=-INTEGER_LIMIT, le=INTEGER_LIMIT)] | None = None
    choices: Annotated[
        list[Annotated[str, StringConstraints(max_length=256)]], Field(max_length=100)
    ] = []

    def rules(self) -> VariableRules:
        return VariableRules(
            type=self.type,
            required=self.required,
            pattern=self.pattern,
            min=self.min,
            max=self.max,
            choices=tuple(self.choices),
        )


class VariableBody(Strict):
    """One egg variable (Pterodactyl's startup variable)."""

    name: Name
    env: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    description: Text = ""
    default: Annotated[str, StringConstraints(max_length=MAX_VALUE_LENGTH)] = ""
    user_editable: bool = True
    rules: VariableRulesBody = VariableRulesBody()

    def variable(self) -> EggVariable:
        return EggVariable(
            name=self.name,
            env=self.env,
            default=self.default,
            description=self.description,
            user_editable=self.user_editable,
            rules=self.rules.rules(),
        )


def _declared(body: list[VariableBody] | None) -> tuple[EggVariable, ...] | None:
    """The variables of a body, checked together (ValueError names the variable)."""
    if body is None:
        return None
    variables = tuple(v.variable() for v in body)
    check_declaration(variables)
    return variables


Variables = Annotated[list[VariableBody], Field(max_length=MAX_VARIABLES)]


def _distinct(ports: list[int]) -> list[int]:
    if len(set(ports)) != len(ports):
        raise ValueError("must not repeat a port")
    return ports


# Fixed ports an egg's image listens on, mapped to a container's allocations in order.
ContainerPorts = Annotated[
    list[Annotated[int, Field(ge=1, le=65535)]], Field(max_length=64), AfterValidator(_distinct)
]
PortNumber = Annotated[int, Field(ge=1024, le=65535)]
PortRange = Annotated[list[PortNumber], Field(min_length=2, max_length=2)]
# The IP or DNS name clients reach a host's published ports on.
PublicAddress = Annotated[
    str, StringConstraints(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.:\-\[\]]+$")
]


def _checked_range(port_range: list[int] | None) -> None:
    if port_range and port_range[0] > port_range[1]:
        raise ValueError("port_range must be [low, high] with low <= high")


def check_container_image(image: str) -> None:
    """A docker egg's image must be a pullable reference (ValueError saying why not)."""
    parse_image(image)


class RegistryAuthBody(Strict):
    """Credentials for the registry of a docker egg's image. Stored sealed; never shown."""

    username: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=4096)]


class EggCreate(Strict):
    name: Name
    description: Text = ""
    engine: Engine = Engine.DOCKER
    image: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    command: Annotated[list[Text], Field(max_length=64)] | None = None
    environment: Annotated[dict[Label, Text], Field(max_length=128)] = {}
    minimum: EggResources = EggResources()
    defaults: EggResources = EggResources()
    stop_timeout: Annotated[int, Field(ge=0, le=3600)] = 10
    vm: EggVm | None = None
    variables: Variables = []
    container_ports: ContainerPorts = []
    data_path: DataPath = DEFAULT_DATA_PATH
    registry_auth: RegistryAuthBody | None = None

    @model_validator(mode="after")
    def _vm_only_for_qemu(self) -> EggCreate:
        if self.vm is not None and self.engine != Engine.QEMU:
            raise ValueError("vm settings are for qemu eggs only")
        if self.variables and self.engine != Engine.DOCKER:
            raise ValueError("variables are for docker eggs only")
        _declared(self.variables)
        if self.container_ports and self.engine != Engine.DOCKER:
            raise ValueError("container_ports are for docker eggs only (VMs have guest_ports)")
        if self.registry_auth is not None and self.engine != Engine.DOCKER:
            raise ValueError("registry_auth is for docker eggs only")
        if self.engine == Engine.DOCKER:
            check_container_image(self.image)
        return self

    def declared(self) -> tuple[EggVariable, ...]:
        return _declared(self.variables) or ()


TlsField = Annotated[str, StringConstraints(pattern=r"^(ca_cert|client_cert|client_key)$")]
Pem = Annotated[str, StringConstraints(max_length=16384)]
HostKey = Annotated[str, StringConstraints(max_length=16384)]
# The engine each driver speaks: Docker Engine for containers, QEMU over SSH for VMs.
DRIVER_ENGINES: dict[DriverKind, Engine] = {
    DriverKind.DOCKER: Engine.DOCKER,
    DriverKind.SSH: Engine.QEMU,
}
ADDRESS_SCHEMES: dict[DriverKind, tuple[str, ...]] = {
    DriverKind.DOCKER: ("unix://", "tcp://", "ssh://"),
    DriverKind.SSH: ("ssh://",),
}


class HostCapacity(Strict):
    cpu_cores: Annotated[Cores, Field(gt=0)]
    ram_mb: Annotated[RamMb, Field(gt=0)]
    storage_mb: Annotated[StorageMb, Field(ge=0)] = 0


class HostCreate(Strict):
    name: Name
    driver: DriverKind = DriverKind.DOCKER
    address: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    engines: Annotated[list[Engine], Field(min_length=1, max_length=4)] = [Engine.DOCKER]
    capacity: HostCapacity
    labels: Annotated[dict[Label, Label], Field(max_length=64)] = {}
    tls: Annotated[dict[TlsField, Pem], Field(max_length=3)] = {}
    ssh_host_key: HostKey | None = None
    ssh_private_key: Pem | None = None
    port_range: PortRange | None = None
    public_address: PublicAddress | None = None

    @model_validator(mode="before")
    @classmethod
    def _engines_of_the_driver(cls, data: Any) -> Any:
        """Without `engines`, a host runs what its driver speaks."""
        if isinstance(data, dict) and "engines" not in data:
            driver = data.get("driver", DriverKind.DOCKER.value)
            if isinstance(driver, str) and driver in DRIVER_ENGINES:
                return data | {"engines": [DRIVER_ENGINES[DriverKind(driver)].value]}
        return data

    @model_validator(mode="after")
    def _address_fits_driver(self) -> HostCreate:
        schemes = ADDRESS_SCHEMES[self.driver]
        if not self.address.startswith(schemes):
            raise ValueError(
                f"address for a {self.driver.value} host must start with {' or '.join(schemes)}"
            )
        if self.tls and not self.address.startswith("tcp://"):
            raise ValueError("tls material is only used with tcp:// addresses")
        if self.driver == DriverKind.SSH and not (self.ssh_host_key and self.ssh_private_key):
            raise ValueError("an ssh host needs ssh_host_key (pinned) and ssh_private_key")
        runs = DRIVER_ENGINES[self.driver]
        if not set(self.engines) <= {runs}:
            raise ValueError(f"{self.driver.value} hosts run {runs.value} workloads only")
        if self.driver == DriverKind.SSH:
            try:
                parse_ssh_address(self.address)
            except ValueError as exc:
                raise ValueError(f"address: {exc}") from exc
            for label in (LABEL_BASE_DIR, LABEL_IMAGES_DIR):
                if label in self.labels and not is_plain_folder(self.labels[label]):
                    raise ValueError(f"labels.{label} must be an absolute path without ..")
            if LABEL_ACCEL in self.labels and not is_accel(self.labels[LABEL_ACCEL]):
                raise ValueError(f"labels.{LABEL_ACCEL} must look like kvm, tcg or kvm:tcg")
            outgoing = self.labels.get(LABEL_VM_OUTGOING, VM_OUTGOING_ALLOWED)
            if outgoing != VM_OUTGOING_ALLOWED:
                raise ValueError(
                    f"labels.{LABEL_VM_OUTGOING} is {VM_OUTGOING_ALLOWED!r} or left out"
                )
        _checked_range(self.port_range)
        return self


class HostUpdate(Strict):
    """PATCH /api/v1/hosts/:id: where the host's workloads are reached."""

    port_range: PortRange | None = None
    public_address: PublicAddress | None = None

    @model_validator(mode="after")
    def _range_in_order(self) -> HostUpdate:
        _checked_range(self.port_range)
        return self


class ClusterUpdate(Strict):
    name: Name | None = None
    plan: PlanLimits | None = None
    egg_ids: Annotated[list[Id], Field(max_length=200)] | None = None
    type: ClusterType | None = None
    description: Description | None = None
    config: ClusterSettings | None = None

    def is_empty(self) -> bool:
        """Nothing to change: every field left out or null."""
        return all(getattr(self, name) is None for name in type(self).model_fields)


class EggUpdate(Strict):
    name: Name | None = None
    description: Text | None = None
    image: Annotated[str, StringConstraints(min_length=1, max_length=512)] | None = None
    command: Annotated[list[Text], Field(max_length=64)] | None = None
    environment: Annotated[dict[Label, Text], Field(max_length=128)] | None = None
    minimum: EggResources | None = None
    defaults: EggResources | None = None
    stop_timeout: Annotated[int, Field(ge=0, le=3600)] | None = None
    vm: EggVm | None = None
    variables: Variables | None = None

    @model_validator(mode="after")
    def _variables_declared(self) -> EggUpdate:
        _declared(self.variables)
        return self

    def declared(self) -> tuple[EggVariable, ...] | None:
        return _declared(self.variables)

    container_ports: ContainerPorts | None = None
    data_path: DataPath | None = None
    # null removes the credentials; left out keeps them
    registry_auth: RegistryAuthBody | None = None


def _image_reference(image: str) -> str:
    parse_image(image)
    return image


ImageReferenceText = Annotated[
    str, StringConstraints(min_length=1, max_length=512), AfterValidator(_image_reference)
]


class ImagePull(Strict):
    """POST /api/v1/images/pull: pull `image` on `host_ids` (default: every docker host
    that is not down), with the registry credentials of egg `egg_id` when given."""

    image: ImageReferenceText
    host_ids: Annotated[list[Id], Field(min_length=1, max_length=200)] | None = None
    egg_id: Id | None = None


class ImageDelete(Strict):
    """DELETE /api/v1/images: remove `image` from host `host_id`."""

    image: ImageReferenceText
    host_id: Id


class Instantiate(Strict):
    """POST /api/v1/templates/:id/instantiate: a workload from an egg, defaults filled in."""

    cluster_id: Id
    name: Name
    resources: EggResources = EggResources()
    constraints: Annotated[dict[Label, Label], Field(max_length=16)] = {}


class PlatformSettingsUpdate(Strict):
    """PATCH /api/v1/platform/settings."""

    default_cluster_id: Id | None = None


# -- databases ---------------------------------------------------------------------

DatabaseHostName = Annotated[
    str, StringConstraints(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9][A-Za-z0-9.:-]*$")
]
DatabaseUser = Annotated[
    str, StringConstraints(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
]
DatabasePassword = Annotated[str, StringConstraints(min_length=1, max_length=256)]
ClusterIds = Annotated[list[Id], Field(max_length=200)]


class DatabaseHostCreate(Strict):
    """POST /api/v1/database-hosts: a server Corral may create databases on."""

    name: Name
    engine: DatabaseEngine
    host: DatabaseHostName
    port: Annotated[int, Field(ge=1, le=65535)]
    username: DatabaseUser
    password: DatabasePassword
    max_databases: Annotated[int, Field(ge=0, le=100_000)] = 100
    cluster_ids: ClusterIds = []

    @model_validator(mode="after")
    def _visible_password(self) -> DatabaseHostCreate:
        visible_text(self.password)
        return self


class DatabaseHostUpdate(Strict):
    name: Name | None = None
    host: DatabaseHostName | None = None
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    username: DatabaseUser | None = None
    password: DatabasePassword | None = None
    max_databases: Annotated[int, Field(ge=0, le=100_000)] | None = None
    cluster_ids: ClusterIds | None = None

    @model_validator(mode="after")
    def _visible_password(self) -> DatabaseHostUpdate:
        if self.password is not None:
            visible_text(self.password)
        return self


DatabaseVersion = Annotated[
    str, StringConstraints(min_length=1, max_length=16, pattern=r"^[0-9]+(\.[0-9]+)*$")
]


class ManagedDatabaseCreate(Strict):
    """POST /api/v1/managed-databases (001)."""

    cluster_id: Id
    name: Name
    engine: DatabaseEngine = DatabaseEngine.POSTGRES
    version: DatabaseVersion | None = None


class BindRequest(Strict):
    app_id: Id
