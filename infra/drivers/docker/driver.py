"""The Docker Engine host driver: one container per workload, through the docker SDK.

The engine is reached at `unix:///path/docker.sock`, `tcp://host:port` (mutual TLS from
PEM strings) or `ssh://user@host` (host key checked against known_hosts, unknown keys
rejected). Containers are named `corral-<workload id>` and carry Corral's labels; the
name makes `ensure` idempotent, the labels let `list_managed` find them.

Each cluster has a bridge network of its own on the host, `corral-net-<cluster id>`
(see `networks`): made on its first container, removed with its last. A container
publishes each of its allocations on the host as tcp and udp.

Each container has a named data volume (`corral-data-<workload id>`) mounted at its
egg's `data_path`: created with the container, kept when only the container is
recreated (an egg switch, a reconciler's recreate), removed with the workload.

What the engine enforces varies by host: CPU quota and memory are enforced everywhere
cgroups are; a block-IO weight needs the kernel's blkio weight support; `storage_mb`
is enforced when the storage driver can size a root filesystem (btrfs with quotas,
overlay2 on xfs with pquota) AND the engine names, in its daemon label
`io.corral.volume-driver`, a volume driver that takes a `size` option (Corral's dev
stack runs one over btrfs subvolumes with quota groups: devstack/volumes.py). Each
`Observed.enforced` says, read back from the container, which limits are enforced and
which Corral only accounts for (of a container just created: the limits it asked for that
the engine kept in the first container that asked for each kind; see `_made`).

A provision costs the engine four calls when nothing is in the way: create the volume,
find the cluster's network, create the container, start it. Everything else is asked
only when an answer says it is needed: a name conflict (409) reads the container that
holds the name, a missing image (404) has the job pull it. (The network's id is not
remembered: the engine takes a container on a network removed meanwhile, and only its
start fails.)
"""

from __future__ import annotations

import shutil
import tempfile
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import replace
from types import TracebackType
from typing import Any, cast

import docker
import docker.errors

from infra.drivers.docker import data as docker_data
from infra.drivers.docker import images as docker_images
from infra.drivers.docker import networks
from infra.drivers.docker import observe as docker_observe
from infra.drivers.docker.connect import connect, tls_config
from infra.drivers.docker.errors import LIBRARY_ERRORS, host_errors
from shared.capacity import Resources
from shared.errors import HostError, workload_missing
from shared.health import LogLine, Stats
from shared.images import RegistryAuth
from shared.runtime import (
    LABEL_CLUSTER,
    LABEL_MANAGED,
    LABEL_WORKLOAD,
    HostInfo,
    Observed,
    RuntimeState,
    WorkloadSpec,
    data_volume_name,
    runtime_name,
)
from shared.states import PowerSignal

# CFS period; a quota of cpu_centi * 1000 µs per period is cpu_centi/100 cores. Quota and
# period, unlike nano_cpus, can be changed on a live container.
CPU_PERIOD_US = 100_000
MIB = 1024 * 1024
BLKIO_WEIGHT_RANGE = (10, 1000)

_STATES: dict[str, RuntimeState] = {
    "running": RuntimeState.RUNNING,
    "restarting": RuntimeState.RUNNING,
    "paused": RuntimeState.PAUSED,
    "created": RuntimeState.STOPPED,
    "exited": RuntimeState.STOPPED,
    "dead": RuntimeState.STOPPED,
    "removing": RuntimeState.STOPPED,
}
_TARGETS: dict[PowerSignal, RuntimeState] = {
    PowerSignal.START: RuntimeState.RUNNING,
    PowerSignal.RESTART: RuntimeState.RUNNING,
    PowerSignal.RESUME: RuntimeState.RUNNING,
    PowerSignal.STOP: RuntimeState.STOPPED,
    PowerSignal.KILL: RuntimeState.STOPPED,
    PowerSignal.PAUSE: RuntimeState.PAUSED,
}
# The signals the engine takes whatever the container's state, but paused.
_SENT_AT_ONCE: dict[PowerSignal, Callable[[Any, str, int], object]] = {
    PowerSignal.START: lambda api, name, _: api.start(name),
    PowerSignal.STOP: lambda api, name, timeout: api.stop(name, timeout=timeout),
    PowerSignal.RESTART: lambda api, name, timeout: api.restart(name, timeout=timeout),
}
# What engines answer (with a 500 from overlay2, other codes elsewhere) when the storage
# driver cannot size a container's root filesystem.
_STORAGE_OPT_REFUSALS = ("storage-opt", "storage opt", "storage option", "size option")
_CREATE_ATTEMPTS = 8
# The daemon label naming the volume driver that limits a data volume's size.
VOLUME_DRIVER_LABEL = "io.corral.volume-driver"
_CREATE_BACKOFF_S = 0.02
# Resource name -> (its limit's argument on create, the host config field it is read
# back from); zero there means the engine dropped it.
_READ_BACK = {
    "cpu_cores": ("cpu_quota", "CpuQuota"),
    "ram_mb": ("mem_limit", "Memory"),
    "io": ("blkio_weight", "BlkioWeight"),
}
_ENFORCED_ORDER = ("cpu_cores", "ram_mb", "storage_mb", "io")


container_name = runtime_name


class DockerDriver:
    """A HostDriver for one Docker Engine. Connects lazily, on the first call."""

    def __init__(
        self,
        address: str,
        tls: Mapping[str, str] | None = None,
        *,
        timeout: float = 30,
        client_factory: Callable[..., Any] = docker.DockerClient,
    ) -> None:
        self._address = address
        self._timeout = timeout
        self._client_factory = client_factory
        self._client: Any = None
        self._tls_dir: str | None = None
        self._tls: Any = False
        if tls:
            self._tls_dir = tempfile.mkdtemp(prefix="corral-tls-")
            weakref.finalize(self, shutil.rmtree, self._tls_dir, ignore_errors=True)
            self._tls = tls_config(tls, self._tls_dir, self._address)
        # What this engine refused or silently discarded; None (absent) until first tried.
        self._storage_opt_supported: bool | None = None
        self._honours: dict[str, bool] = {}  # resource name -> the engine keeps its limit
        self._sizing_volume_driver: str | None = None  # learned from the daemon's labels
        self._volume_driver_known = False

    # -- HostDriver ---------------------------------------------------------------

    def ensure(self, spec: WorkloadSpec) -> Observed:
        """Create the workload's container (stopped) unless it exists. The engine is
        asked to create it straight away: its name answers 409 when a container holds
        it (an earlier run of the job, a concurrent one), which is then read back and
        kept if it is the workload's. What a new container is, is known from the spec
        and the engine's answer, without reading it back (see `_made`)."""
        name = spec.runtime_name
        with host_errors(self._address, f"create container {name}", image=spec.image):
            data_sized = self._ensure_volume(spec)
            attrs = None
            for attempt in range(_CREATE_ATTEMPTS):
                time.sleep(_CREATE_BACKOFF_S * attempt)
                try:
                    return self._create(spec, data_sized)
                except docker.errors.APIError as exc:
                    if exc.status_code != 409:
                        raise
                # The name is held: by an earlier or concurrent ensure (ours), unless it
                # fails and frees the name again (then we try once more), or by a stranger.
                attrs = self._inspect(name)
                if attrs is not None:
                    break
            if attrs is None:
                raise HostError(f"container {name} kept vanishing while created", transient=True)
        if _labels(attrs).get(LABEL_WORKLOAD) != spec.workload_id:
            raise HostError(f"container name {name} is taken by a container Corral did not create")
        return self._observed(spec.workload_id, attrs)

    def apply_resources(self, spec: WorkloadSpec) -> Observed:
        name = spec.runtime_name
        with host_errors(self._address, f"update container {name}"):
            self._require(name, spec.workload_id)
            limits = self._limits(spec.resources)
            self._api().update_container(name, **limits)
            attrs = self._require(name, spec.workload_id)
            if "blkio_weight" in limits:
                self._learn_honoured(attrs, ["io"])
        return self._observed(spec.workload_id, attrs)

    def power(self, workload_id: str, signal: PowerSignal, stop_timeout: int = 10) -> Observed:
        """Start, stop and restart are sent at once: the engine takes them in any state
        but paused (a start of a running container, a stop of a stopped one, answer 304).
        What it refuses, and every other signal, goes by the state read first. Only the
        state is known after a signal sent at once."""
        name = container_name(workload_id)
        with host_errors(self._address, f"{signal.value} container {name}"):
            if signal in _SENT_AT_ONCE:
                try:
                    _SENT_AT_ONCE[signal](self._api(), name, stop_timeout)
                except docker.errors.APIError:
                    pass  # missing, paused, changing state: as the state read says, below
                else:
                    return Observed(workload_id=workload_id, state=_TARGETS[signal])
            attrs = self._require(name, workload_id)
            try:
                self._send(name, signal, _state(attrs), stop_timeout)
            except docker.errors.APIError:
                # The container changed state under us (409, or a 500 "is not paused"):
                # fine if it is where the signal wanted it anyway.
                attrs = self._require(name, workload_id)
                if _state(attrs) is not _TARGETS[signal]:
                    raise
        # The engine answered once the container was there (start, stop and restart
        # return then, kill waits for the exit): no need to ask it again.
        return replace(self._observed(workload_id, attrs), state=_TARGETS[signal])

    def remove(self, workload_id: str, *, keep_data: bool = False) -> None:
        name = container_name(workload_id)
        with host_errors(self._address, f"remove container {name}"):
            attrs = self._inspect(name)
            if attrs is not None:
                try:
                    self._api().remove_container(name, v=True, force=True)
                except docker.errors.NotFound:
                    pass
                except docker.errors.APIError as exc:
                    if exc.status_code != 409 or "in progress" not in _explanation(exc):
                        raise
                    self._wait_gone(name)
                cluster_id = _labels(attrs).get(LABEL_CLUSTER)
                if cluster_id:
                    networks.drop_if_unused(self._api(), cluster_id)
            if not keep_data:
                with suppress(docker.errors.NotFound):
                    self._api().remove_volume(data_volume_name(workload_id))

    def has_data(self, workload_id: str) -> bool:
        """Whether the workload's data volume exists on the engine."""
        with host_errors(self._address, "inspect volume"):
            try:
                self._api().inspect_volume(data_volume_name(workload_id))
            except docker.errors.NotFound:
                return False
        return True

    # -- images ---------------------------------------------------------------------

    def pull_if_missing(
        self,
        image: str,
        auth: RegistryAuth | None,
        progress: docker_images.ProgressSink,
    ) -> bool:
        """Pull `image` unless the engine has it; True when it pulled."""
        with host_errors(self._address, f"pull image {image}"):
            if docker_images.has_image(self._api(), image):
                return False
            docker_images.pull(
                self._api(), image, auth, progress, where=f"docker host {self._address}"
            )
        return True

    def remove_image(self, image: str) -> bool:
        """Remove `image` from the engine; False when it was not there."""
        with host_errors(self._address, f"remove image {image}"):
            return docker_images.remove(self._api(), image)

    def image_in_use(self, image: str) -> bool:
        """Whether any container of the engine (Corral's or not) was created from the
        reference `image`. (The engine's `ancestor` filter would also count containers of
        other tags of the same image, which removing this tag leaves alone.)"""
        with host_errors(self._address, "list containers"):
            containers = self._api().containers(all=True)
        return any(summary.get("Image") == image for summary in containers)

    def inspect(self, workload_id: str) -> Observed:
        name = container_name(workload_id)
        with host_errors(self._address, f"inspect container {name}"):
            attrs = self._inspect(name)
            if attrs is None:
                return Observed(workload_id=workload_id, state=RuntimeState.MISSING)
            return self._observed(workload_id, attrs)

    def list_managed(self) -> list[Observed]:
        found: list[Observed] = []
        with host_errors(self._address, "list containers"):
            summaries = self._api().containers(all=True, filters={"label": f"{LABEL_MANAGED}=true"})
            for summary in summaries:
                attrs = self._inspect(summary["Id"])
                if attrs is None:  # removed between the listing and now
                    continue
                workload_id = _labels(attrs).get(LABEL_WORKLOAD) or _name(attrs)
                found.append(self._observed(workload_id, attrs))
        return found

    def probe(self) -> HostInfo:
        """Answer a health check: the engine responds and lists its tagged images."""
        with host_errors(self._address, "list images"):
            images = self._api().images()
        tags = sorted(
            {
                tag
                for image in images
                for tag in image.get("RepoTags") or []
                if tag != "<none>:<none>"
            }
        )
        return HostInfo(images=tuple(tags))

    # -- WorkloadObserver (see docker_observe) ------------------------------------

    def stats(self, workload_ids: Sequence[str]) -> dict[str, Stats]:
        with host_errors(self._address, "read container stats"):
            return docker_observe.stats(self._api(), workload_ids)

    def logs(self, workload_id: str, tail: int, since_ns: int | None = None) -> list[LogLine]:
        name = container_name(workload_id)
        with host_errors(self._address, f"read the logs of container {name}"):
            return docker_observe.logs(self._api(), name, tail, since_ns)

    # -- DataArchiver (see docker_data) -------------------------------------------

    def archive_data(self, workload_id: str, path: str) -> Iterator[bytes]:
        name = container_name(workload_id)
        action = f"archive {path} of container {name}"
        with host_errors(self._address, action):
            chunks = docker_data.archive(self._api(), name, path)
        with host_errors(self._address, action):
            yield from chunks

    def restore_data(self, workload_id: str, path: str, chunks: Iterable[bytes]) -> None:
        name = container_name(workload_id)
        with host_errors(self._address, f"restore {path} of container {name}"):
            attrs = self._require(name, workload_id)
            docker_data.replace(self._api(), name, path, chunks, attrs)

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with suppress(*LIBRARY_ERRORS):
                client.close()
        if self._tls_dir is not None:
            shutil.rmtree(self._tls_dir, ignore_errors=True)
            self._tls_dir = None

    def __enter__(self) -> DockerDriver:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- engine calls -------------------------------------------------------------

    def _api(self) -> Any:
        """The low-level API client; the first call connects (and negotiates the version)."""
        if self._client is None:
            self._client = connect(self._client_factory, self._address, self._tls, self._timeout)
        return self._client.api

    def _inspect(self, name_or_id: str) -> dict[str, Any] | None:
        try:
            return cast(dict[str, Any], self._api().inspect_container(name_or_id))
        except docker.errors.NotFound:
            return None

    def _require(self, name: str, workload_id: str) -> dict[str, Any]:
        attrs = self._inspect(name)
        if attrs is None:
            raise workload_missing(
                f"workload {workload_id} has no container {name} on {self._address}"
            )
        return attrs

    def _create(self, spec: WorkloadSpec, data_sized: bool) -> Observed:
        limits = self._limits(spec.resources)
        wants_storage = spec.resources.storage_mb > 0 and self._storage_opt_supported is not False
        if wants_storage:
            sized = {**limits, "storage_opt": {"size": f"{spec.resources.storage_mb}M"}}
            try:
                container_id = self._create_container(spec, sized)
            except docker.errors.APIError as exc:
                if not _refuses_storage_opt(exc):
                    raise
                self._storage_opt_supported = False
            else:
                self._storage_opt_supported = True
                return self._made(spec, container_id, sized, data_sized)
        return self._made(spec, self._create_container(spec, limits), limits, data_sized)

    def _made(
        self, spec: WorkloadSpec, container_id: str, limits: Mapping[str, Any], data_sized: bool
    ) -> Observed:
        """The container just created from `spec` with `limits`, as reading it back would
        tell: stopped, with the spec's image, labels and environment, and the limits the
        engine holds. The engine drops a limit its kernel cannot enforce (with a mere
        warning), so the first container that asks for a kind of limit is read back to
        learn whether this engine keeps it; later ones are not."""
        asked = [resource for resource, (key, _) in _READ_BACK.items() if key in limits]
        if any(resource not in self._honours for resource in asked):
            self._learn_honoured(self._api().inspect_container(container_id), asked)
        enforced = {
            resource: resource in asked and self._honours[resource] for resource in _READ_BACK
        }
        enforced["storage_mb"] = "storage_opt" in limits and data_sized
        return Observed(
            workload_id=spec.workload_id,
            state=RuntimeState.STOPPED,
            runtime_id=container_id,
            image=spec.image,
            enforced={key: enforced[key] for key in _ENFORCED_ORDER},
            labels=spec.labels(),
            environment=dict(spec.environment),
        )

    def _learn_honoured(self, attrs: Mapping[str, Any], resources: Iterable[str]) -> None:
        host_config = attrs.get("HostConfig") or {}
        for resource in resources:
            self._honours[resource] = (host_config.get(_READ_BACK[resource][1]) or 0) > 0

    def _volume_driver(self) -> str | None:
        """The engine's size-limiting volume driver (its daemon label), or None."""
        if not self._volume_driver_known:
            labels = self._api().info().get("Labels") or []
            named = [label.partition("=")[2] for label in labels if "=" in label]
            keys = [label.partition("=")[0] for label in labels]
            if VOLUME_DRIVER_LABEL in keys:
                self._sizing_volume_driver = named[keys.index(VOLUME_DRIVER_LABEL)] or None
            self._volume_driver_known = True
        return self._sizing_volume_driver

    def _ensure_volume(self, spec: WorkloadSpec) -> bool:
        """The data volume, sized to `storage_mb` where the engine can; one that exists is
        kept as it is (even of another driver: an engine that got its plugin later).
        Whether the volume is of the engine's sizing driver.

        Created straight away: the engine answers an existing volume of the same name
        and driver, and refuses one of another driver (then it is read back and kept)."""
        name = data_volume_name(spec.workload_id)
        driver = self._volume_driver()
        sized = driver is not None and spec.resources.storage_mb > 0
        try:
            volume = self._api().create_volume(
                name,
                driver=driver or "local",
                driver_opts={"size": f"{spec.resources.storage_mb}M"} if sized else None,
                labels={LABEL_MANAGED: "true", LABEL_WORKLOAD: spec.workload_id},
            )
        except docker.errors.APIError as refused:
            try:
                volume = self._api().inspect_volume(name)
            except docker.errors.NotFound:
                raise refused from None
        return driver is not None and volume.get("Driver") == driver

    def _create_container(self, spec: WorkloadSpec, limits: dict[str, Any]) -> str:
        """Create the container; its id."""
        api = self._api()
        volume = {data_volume_name(spec.workload_id): {"bind": spec.data_path, "mode": "rw"}}
        for attempt in range(2):
            network_id = networks.ensure(api, spec.cluster_id)
            try:
                created = api.create_container(
                    spec.image,
                    command=list(spec.command) if spec.command else None,
                    name=spec.runtime_name,
                    labels=spec.labels(),
                    environment=dict(spec.environment) or None,
                    stop_timeout=spec.stop_timeout,
                    ports=networks.exposed_ports(spec.allocations),
                    host_config=api.create_host_config(
                        binds=volume,
                        **limits,
                        port_bindings=networks.port_bindings(spec.allocations),
                        network_mode=network_id,
                    ),
                    networking_config=networks.attachment(api, network_id, spec.name),
                )
                return str(created["Id"])
            except docker.errors.NotFound as exc:
                # The cluster's last container elsewhere took its network away meanwhile.
                network_gone = not isinstance(exc, docker.errors.ImageNotFound) and (
                    "network" in _explanation(exc)
                )
                if attempt == 1 or not network_gone:
                    raise
        raise AssertionError("unreachable")

    def _observed(self, workload_id: str, attrs: Mapping[str, Any]) -> Observed:
        return Observed(
            workload_id=workload_id,
            state=_state(attrs),
            runtime_id=attrs.get("Id"),
            image=(attrs.get("Config") or {}).get("Image"),
            enforced=self._enforced(attrs),
            labels=_labels(attrs),
            environment=_environment(attrs),
        )

    def _enforced(self, attrs: Mapping[str, Any]) -> dict[str, bool]:
        """Which limits the engine holds, read back: it drops what the kernel cannot do.
        Storage counts as enforced only when both the root filesystem and the data
        volume are sized."""
        host_config = attrs.get("HostConfig") or {}
        data = [m for m in attrs.get("Mounts") or [] if m.get("Type") == "volume"]
        sized_driver = self._volume_driver()
        data_sized = sized_driver is not None and all(m.get("Driver") == sized_driver for m in data)
        return {
            "cpu_cores": (host_config.get("CpuQuota") or 0) > 0,
            "ram_mb": (host_config.get("Memory") or 0) > 0,
            "storage_mb": "size" in (host_config.get("StorageOpt") or {}) and data_sized,
            "io": (host_config.get("BlkioWeight") or 0) > 0,
        }

    def _limits(self, resources: Resources) -> dict[str, Any]:
        """Engine limits for `resources`, on create and on update alike. A zero sets no
        limit and, on update, leaves the current one: a resize never lifts a limit
        (docker's cpu_quota -1 would), and docker cannot lift a memory limit in place."""
        limits: dict[str, Any] = {}
        if resources.cpu_centi > 0:
            limits["cpu_period"] = CPU_PERIOD_US
            limits["cpu_quota"] = resources.cpu_centi * 1000
        if resources.ram_mb > 0:
            limits["mem_limit"] = limits["memswap_limit"] = resources.ram_mb * MIB
        weight = self._blkio_weight(resources)
        if weight is not None:
            limits["blkio_weight"] = weight
        return limits

    def _blkio_weight(self, resources: Resources) -> int | None:
        if resources.io <= 0 or self._honours.get("io") is False:
            return None
        low, high = BLKIO_WEIGHT_RANGE
        return min(max(resources.io, low), high)

    def _send(self, name: str, signal: PowerSignal, state: RuntimeState, stop_timeout: int) -> None:
        api = self._api()
        live = state in (RuntimeState.RUNNING, RuntimeState.PAUSED)
        if signal is PowerSignal.START:
            if state is RuntimeState.PAUSED:
                api.unpause(name)
            elif state is not RuntimeState.RUNNING:
                api.start(name)
        elif signal is PowerSignal.STOP:
            if live:
                self._unpausing(name, lambda: api.stop(name, timeout=stop_timeout))
        elif signal is PowerSignal.RESTART:
            self._unpausing(name, lambda: api.restart(name, timeout=stop_timeout))
        elif signal is PowerSignal.KILL:
            if live:
                self._unpausing(name, lambda: api.kill(name))
                # kill only delivers the signal; wait until the engine saw the exit.
                api.wait(name, timeout=self._timeout, condition="not-running")
        elif signal is PowerSignal.PAUSE:
            if state is RuntimeState.STOPPED:
                raise HostError(f"cannot pause container {name}: it is not running")
            if state is RuntimeState.RUNNING:
                api.pause(name)
        elif signal is PowerSignal.RESUME:
            if state is RuntimeState.STOPPED:
                raise HostError(f"cannot resume container {name}: it is stopped, not paused")
            if state is RuntimeState.PAUSED:
                api.unpause(name)

    def _unpausing(self, name: str, action: Callable[[], object]) -> None:
        """Run `action`; if the engine refuses because the container is paused, unpause first."""
        try:
            action()
        except docker.errors.APIError as exc:
            if exc.status_code != 409 or "paused" not in _explanation(exc):
                raise
            self._api().unpause(name)
            action()

    def _wait_gone(self, name: str) -> None:
        with suppress(docker.errors.NotFound):
            self._api().wait(name, timeout=self._timeout, condition="removed")


def _refuses_storage_opt(exc: docker.errors.APIError) -> bool:
    explanation = _explanation(exc)
    return any(fragment in explanation for fragment in _STORAGE_OPT_REFUSALS)


def _explanation(exc: docker.errors.APIError) -> str:
    return str(exc.explanation or exc).lower()


def _state(attrs: Mapping[str, Any]) -> RuntimeState:
    return _STATES.get(str(attrs.get("State", {}).get("Status", "")), RuntimeState.STOPPED)


def _labels(attrs: Mapping[str, Any]) -> dict[str, str]:
    return dict((attrs.get("Config") or {}).get("Labels") or {})


def _name(attrs: Mapping[str, Any]) -> str:
    return str(attrs.get("Name", "")).lstrip("/").removeprefix("corral-")


def _environment(attrs: Mapping[str, Any]) -> dict[str, str]:
    """The container's environment, `NAME=value` entries as a mapping."""
    entries = (attrs.get("Config") or {}).get("Env") or []
    return dict(entry.split("=", 1) for entry in entries if "=" in entry)
