"""DockerDriver against a real dockerd started by the `dockerd` fixture."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import certifi
import docker
import docker.errors
import pytest

from devstack.dockerd import Dockerd
from devstack.processes import free_port
from infra.drivers.docker.driver import DockerDriver, container_name
from shared.capacity import Resources
from shared.errors import HostError
from shared.runtime import LABEL_MANAGED, Observed, RuntimeState, WorkloadSpec, cluster_network
from shared.states import PowerSignal

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
SMALL = Resources(cpu_centi=50, ram_mb=64, storage_mb=100, io=500)


@pytest.fixture
def driver(dockerd: Dockerd) -> Iterator[DockerDriver]:
    with DockerDriver(dockerd.url, timeout=20) as driver:
        yield driver


@pytest.fixture
def new_spec(
    busybox_image: str, docker_client: docker.DockerClient
) -> Iterator[Callable[..., WorkloadSpec]]:
    """Build specs with fresh workload ids; their containers are removed afterwards."""
    made: list[WorkloadSpec] = []

    def build(resources: Resources = SMALL, **fields: Any) -> WorkloadSpec:
        fields.setdefault("image", busybox_image)
        spec = WorkloadSpec(
            workload_id=uuid.uuid4().hex[:12],
            cluster_id="cl-test",
            egg_id="egg-busybox",
            resources=resources,
            stop_timeout=5,
            **fields,
        )
        made.append(spec)
        return spec

    yield build
    for spec in made:
        with contextlib.suppress(docker.errors.NotFound):
            docker_client.api.remove_container(spec.runtime_name, force=True, v=True)


def engine_attrs(client: docker.DockerClient, spec: WorkloadSpec) -> dict[str, Any]:
    attrs: dict[str, Any] = client.api.inspect_container(spec.runtime_name)
    return attrs


def engine_status(client: docker.DockerClient, spec: WorkloadSpec) -> str:
    return str(engine_attrs(client, spec)["State"]["Status"])


def containers_of(client: docker.DockerClient, spec: WorkloadSpec) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = client.api.containers(
        all=True, filters={"label": f"io.corral.workload={spec.workload_id}"}
    )
    return found


def expected_enforced(host_config: dict[str, Any]) -> dict[str, bool]:
    return {
        "cpu_cores": True,
        "ram_mb": True,
        "storage_mb": "size" in (host_config.get("StorageOpt") or {}),
        "io": host_config["BlkioWeight"] > 0,
    }


class RecordingClient:
    """A real DockerClient whose engine calls are recorded by name, and the host config
    of each `create_container` (injected as the driver's client factory, not patched)."""

    def __init__(self, **kwargs: Any) -> None:
        self._client = docker.DockerClient(**kwargs)
        self.calls: list[str] = []
        self.created_with: list[dict[str, Any]] = []
        self.api = self

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._client.api, name)
        if not callable(found) or (name.startswith("create_") and name.endswith("_config")):
            return found  # builds a request body: no engine call

        def recorded(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            if name == "create_container":
                self.created_with.append(kwargs["host_config"])
            return found(*args, **kwargs)

        return recorded

    def close(self) -> None:
        self._client.close()


@pytest.fixture
def recorded(dockerd: Dockerd) -> Iterator[tuple[DockerDriver, RecordingClient]]:
    """A driver of the session's dockerd, and the recording client it connects with."""
    clients: list[RecordingClient] = []

    def factory(**kwargs: Any) -> RecordingClient:
        clients.append(RecordingClient(**kwargs))
        return clients[-1]

    with DockerDriver(dockerd.url, client_factory=factory) as driver:
        driver.inspect("none")  # connects
        yield driver, clients[0]


# -- ensure -----------------------------------------------------------------------


def test_runtime_name_matches_the_spec() -> None:
    assert container_name("w1") == "corral-w1"


def test_ensure_creates_one_labelled_stopped_container_with_limits(
    driver: DockerDriver, new_spec: Callable[..., WorkloadSpec], docker_client: docker.DockerClient
) -> None:
    spec = new_spec(environment={"GREETING": "hi"})

    observed = driver.ensure(spec)

    attrs = engine_attrs(docker_client, spec)
    host = attrs["HostConfig"]
    assert attrs["Name"] == f"/corral-{spec.workload_id}"
    assert attrs["Config"]["Labels"] == spec.labels()
    assert "GREETING=hi" in attrs["Config"]["Env"]
    assert (host["CpuPeriod"], host["CpuQuota"]) == (100_000, 50_000)
    assert host["NanoCpus"] == 0  # quota/period stays updatable; nano_cpus would not be
    assert host["Memory"] == host["MemorySwap"] == 64 * MIB
    assert attrs["State"]["Status"] == "created"
    assert observed == Observed(
        workload_id=spec.workload_id,
        state=RuntimeState.STOPPED,
        runtime_id=attrs["Id"],
        image=spec.image,
        enforced=expected_enforced(host),
        labels=spec.labels(),
    )
    assert len(containers_of(docker_client, spec)) == 1


def test_ensure_twice_keeps_one_container(
    driver: DockerDriver, new_spec: Callable[..., WorkloadSpec], docker_client: docker.DockerClient
) -> None:
    spec = new_spec()

    first = driver.ensure(spec)
    second = driver.ensure(spec)

    assert second.runtime_id == first.runtime_id
    assert len(containers_of(docker_client, spec)) == 1


def test_concurrent_ensures_make_one_container(
    dockerd: Dockerd,
    new_spec: Callable[..., WorkloadSpec],
    docker_client: docker.DockerClient,
) -> None:
    spec = new_spec()

    def ensure_once(_: int) -> str | None:
        with DockerDriver(dockerd.url) as driver:
            return driver.ensure(spec).runtime_id

    with ThreadPoolExecutor(max_workers=8) as pool:
        runtime_ids = set(pool.map(ensure_once, range(8)))

    assert len(runtime_ids) == 1
    assert len(containers_of(docker_client, spec)) == 1


def test_ensure_refuses_a_foreign_container_holding_the_name(
    driver: DockerDriver,
    new_spec: Callable[..., WorkloadSpec],
    docker_client: docker.DockerClient,
    busybox_image: str,
) -> None:
    spec = new_spec()
    docker_client.api.create_container(busybox_image, name=spec.runtime_name)

    with pytest.raises(HostError, match="did not create") as caught:
        driver.ensure(spec)
    assert not caught.value.transient


def test_refused_storage_size_is_remembered_per_engine(
    recorded: tuple[DockerDriver, RecordingClient], new_spec: Callable[..., WorkloadSpec]
) -> None:
    driver, client = recorded
    first = driver.ensure(new_spec())
    calls_for_first = len(client.created_with)
    second = driver.ensure(new_spec())

    assert first.enforced["storage_mb"] == second.enforced["storage_mb"]
    calls_for_second = client.created_with[calls_for_first:]
    assert len(calls_for_second) == 1  # never retried the option the engine refused
    sized = "StorageOpt" in calls_for_second[0]
    assert sized == first.enforced["storage_mb"]


def test_ensure_with_missing_image_is_a_permanent_error(
    driver: DockerDriver, new_spec: Callable[..., WorkloadSpec]
) -> None:
    spec = new_spec(image="corral/not-here:1.0")

    with pytest.raises(HostError, match=r"image 'corral/not-here:1\.0' is not present") as caught:
        driver.ensure(spec)
    assert not caught.value.transient


def test_a_new_container_costs_the_engine_no_read_back_once_its_limits_are_known(
    recorded: tuple[DockerDriver, RecordingClient],
    new_spec: Callable[..., WorkloadSpec],
    docker_client: docker.DockerClient,
) -> None:
    driver, client = recorded
    driver.ensure(new_spec())  # learns what the engine keeps of each limit
    seen = len(client.calls)
    spec = new_spec()
    observed = driver.ensure(spec)
    second = client.calls[seen:]
    read_back = driver.inspect(spec.workload_id)

    assert "inspect_container" not in second and "inspect_volume" not in second, second
    assert second.count("create_volume") == 1
    assert second.count("create_container") == 1
    assert observed == read_back  # what it says without reading back is what is there
    assert observed.runtime_id == engine_attrs(docker_client, spec)["Id"]


def test_ensure_makes_again_a_container_removed_behind_its_back(
    driver: DockerDriver, new_spec: Callable[..., WorkloadSpec], docker_client: docker.DockerClient
) -> None:
    spec = new_spec()
    first = driver.ensure(spec)
    docker_client.api.remove_container(spec.runtime_name, force=True)  # the volume stays

    again = driver.ensure(spec)

    assert again.runtime_id != first.runtime_id
    assert again.runtime_id == engine_attrs(docker_client, spec)["Id"]
    assert [c["Id"] for c in containers_of(docker_client, spec)] == [again.runtime_id]


def test_an_existing_data_volume_of_another_driver_is_kept_as_it_is(
    driver: DockerDriver, new_spec: Callable[..., WorkloadSpec], docker_client: docker.DockerClient
) -> None:
    spec = new_spec()  # with storage_mb: the engine's sizing driver is asked for
    volume = f"corral-data-{spec.workload_id}"
    docker_client.api.create_volume(volume, driver="local")  # made before the plugin came
    try:
        observed = driver.ensure(spec)

        mounts = engine_attrs(docker_client, spec)["Mounts"]
        kept = docker_client.api.inspect_volume(volume)
    finally:
        driver.remove(spec.workload_id)
    assert [(m["Name"], m["Driver"]) for m in mounts] == [(volume, "local")]
    assert kept["Driver"] == "local"
    assert observed.enforced["storage_mb"] is False  # a local volume is not sized


# -- apply_resources ----------------------------------------------------------------


@pytest.mark.parametrize("start", [False, True], ids=["stopped", "running"])
def test_apply_resources_changes_live_limits(
    driver: DockerDriver,
    new_spec: Callable[..., WorkloadSpec],
    docker_client: docker.DockerClient,
    start: bool,
) -> None:
    spec = new_spec()
    driver.ensure(spec)
    if start:
        driver.power(spec.workload_id, PowerSignal.START)

    bigger = Resources(cpu_centi=150, ram_mb=128, storage_mb=200, io=800)
    observed = driver.apply_resources(replace(spec, resources=bigger))

    host = engine_attrs(docker_client, spec)["HostConfig"]
    assert (host["CpuPeriod"], host["CpuQuota"]) == (100_000, 150_000)
    assert host["Memory"] == host["MemorySwap"] == 128 * MIB
    assert observed.enforced == expected_enforced(host)
    assert observed.state is (RuntimeState.RUNNING if start else RuntimeState.STOPPED)

    smaller = Resources(cpu_centi=25, ram_mb=32)
    driver.apply_resources(replace(spec, resources=smaller))

    host = engine_attrs(docker_client, spec)["HostConfig"]
    assert (host["CpuQuota"], host["Memory"], host["MemorySwap"]) == (25_000, 32 * MIB, 32 * MIB)

    # Issue 12, defect 1: a resize never lifts a limit (no cpu_quota -1).
    driver.apply_resources(replace(spec, resources=Resources(cpu_centi=0, ram_mb=0)))

    host = engine_attrs(docker_client, spec)["HostConfig"]
    assert (host["CpuQuota"], host["Memory"], host["MemorySwap"]) == (25_000, 32 * MIB, 32 * MIB)


def test_apply_resources_of_missing_container_is_a_permanent_error(
    driver: DockerDriver, new_spec: Callable[..., WorkloadSpec]
) -> None:
    with pytest.raises(HostError, match="has no container") as caught:
        driver.apply_resources(new_spec())
    assert not caught.value.transient


# -- power ----------------------------------------------------------------------


# (signal, engine status after it, RuntimeState after it); each step runs twice.
POWER_SEQUENCE = [
    (PowerSignal.START, "running", RuntimeState.RUNNING),
    (PowerSignal.PAUSE, "paused", RuntimeState.PAUSED),
    (PowerSignal.RESUME, "running", RuntimeState.RUNNING),
    (PowerSignal.RESTART, "running", RuntimeState.RUNNING),
    (PowerSignal.STOP, "exited", RuntimeState.STOPPED),
    (PowerSignal.KILL, "exited", RuntimeState.STOPPED),
    (PowerSignal.RESTART, "running", RuntimeState.RUNNING),
    (PowerSignal.KILL, "exited", RuntimeState.STOPPED),
    (PowerSignal.START, "running", RuntimeState.RUNNING),
    (PowerSignal.PAUSE, "paused", RuntimeState.PAUSED),
    (PowerSignal.STOP, "exited", RuntimeState.STOPPED),
    (PowerSignal.START, "running", RuntimeState.RUNNING),
    (PowerSignal.PAUSE, "paused", RuntimeState.PAUSED),
    (PowerSignal.START, "running", RuntimeState.RUNNING),  # start on paused resumes
    (PowerSignal.PAUSE, "paused", RuntimeState.PAUSED),
    (PowerSignal.KILL, "exited", RuntimeState.STOPPED),
]


def test_power_signals_reach_their_engine_state_and_repeat_harmlessly(
    driver: DockerDriver, new_spec: Callable[..., WorkloadSpec], docker_client: docker.DockerClient
) -> None:
    spec = new_spec()
    driver.ensure(spec)

    for signal, status, state in POWER_SEQUENCE:
        for attempt in ("first", "repeat"):
            observed = driver.power(spec.workload_id, signal, stop_timeout=5)
            assert (signal, attempt, engine_status(docker_client, spec)) == (
                signal,
                attempt,
                status,
            )
            assert observed.state is state


def test_stop_is_graceful_and_prompt(
    driver: DockerDriver, new_spec: Callable[..., WorkloadSpec], docker_client: docker.DockerClient
) -> None:
    spec = new_spec()
    driver.ensure(spec)
    driver.power(spec.workload_id, PowerSignal.START)

    driver.power(spec.workload_id, PowerSignal.STOP, stop_timeout=30)

    assert engine_attrs(docker_client, spec)["State"]["ExitCode"] == 0  # SIGTERM, not SIGKILL


@pytest.mark.parametrize("signal", [PowerSignal.PAUSE, PowerSignal.RESUME])
def test_pause_or_resume_of_stopped_container_is_refused(
    driver: DockerDriver, new_spec: Callable[..., WorkloadSpec], signal: PowerSignal
) -> None:
    spec = new_spec()
    driver.ensure(spec)

    with pytest.raises(HostError) as caught:
        driver.power(spec.workload_id, signal)
    assert not caught.value.transient


def test_power_of_missing_container_is_a_permanent_error(driver: DockerDriver) -> None:
    with pytest.raises(HostError, match="has no container") as caught:
        driver.power("nobody", PowerSignal.START)
    assert not caught.value.transient


# -- remove, inspect, list ----------------------------------------------------------


def test_remove_destroys_and_repeats_harmlessly(
    driver: DockerDriver, new_spec: Callable[..., WorkloadSpec], docker_client: docker.DockerClient
) -> None:
    spec = new_spec()
    driver.ensure(spec)
    driver.power(spec.workload_id, PowerSignal.START)

    driver.remove(spec.workload_id)
    driver.remove(spec.workload_id)

    assert containers_of(docker_client, spec) == []
    assert driver.inspect(spec.workload_id).state is RuntimeState.MISSING


def test_inspect_of_unknown_workload_is_missing(driver: DockerDriver) -> None:
    observed = driver.inspect("never-created")

    assert observed == Observed(workload_id="never-created", state=RuntimeState.MISSING)


def test_inspect_reports_state_image_labels_and_enforcement(
    driver: DockerDriver, new_spec: Callable[..., WorkloadSpec], docker_client: docker.DockerClient
) -> None:
    spec = new_spec()
    created = driver.ensure(spec)
    driver.power(spec.workload_id, PowerSignal.START)

    observed = driver.inspect(spec.workload_id)

    assert observed.state is RuntimeState.RUNNING
    assert (observed.runtime_id, observed.image, observed.labels) == (
        created.runtime_id,
        spec.image,
        spec.labels(),
    )
    assert observed.enforced == created.enforced


def test_list_managed_sees_only_labelled_containers(
    driver: DockerDriver,
    new_spec: Callable[..., WorkloadSpec],
    docker_client: docker.DockerClient,
    busybox_image: str,
) -> None:
    running, stopped = new_spec(), new_spec()
    driver.ensure(running)
    driver.ensure(stopped)
    driver.power(running.workload_id, PowerSignal.START)
    bystander = docker_client.api.create_container(
        busybox_image, name=f"bystander-{uuid.uuid4().hex[:8]}"
    )
    try:
        listed = {observed.workload_id: observed for observed in driver.list_managed()}
    finally:
        docker_client.api.remove_container(bystander["Id"], force=True)

    assert listed[running.workload_id].state is RuntimeState.RUNNING
    assert listed[stopped.workload_id].state is RuntimeState.STOPPED
    assert all(observed.labels.get(LABEL_MANAGED) == "true" for observed in listed.values())
    assert bystander["Id"] not in {observed.runtime_id for observed in listed.values()}


# -- unreachable engines ----------------------------------------------------------


@pytest.mark.parametrize("kind", ["unix", "tcp"])
def test_dead_address_is_a_transient_error(
    tmp_path: Path, new_spec: Callable[..., WorkloadSpec], kind: str
) -> None:
    address = (
        f"unix://{tmp_path / 'absent.sock'}"
        if kind == "unix"
        else f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    )
    with DockerDriver(address, timeout=2) as driver:
        for call in (
            lambda: driver.ensure(new_spec()),
            lambda: driver.inspect("w1"),
            lambda: driver.list_managed(),
            lambda: driver.power("w1", PowerSignal.STOP),
            lambda: driver.remove("w1"),
        ):
            with pytest.raises(HostError, match="unreachable") as caught:
                call()
            assert caught.value.transient
            assert caught.value.__cause__ is not None


# -- tcp with mutual TLS ------------------------------------------------------------


def test_tcp_with_client_certificate_reaches_the_engine(
    dockerd: Dockerd,
    new_spec: Callable[..., WorkloadSpec],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert dockerd.tcp_url is not None and dockerd.tls is not None
    # requests would let this replace the host's CA with the public bundle.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    spec = new_spec()
    driver = DockerDriver(dockerd.tcp_url, tls=dockerd.tls, timeout=10)
    tls_dir = Path(driver._tls_dir or "")
    try:
        assert driver.ensure(spec).state is RuntimeState.STOPPED
        assert spec.workload_id in {observed.workload_id for observed in driver.list_managed()}
        assert sorted(p.name for p in tls_dir.iterdir()) == [
            "ca_cert.pem",
            "client_cert.pem",
            "client_key.pem",
        ]
        assert all(p.stat().st_mode & 0o077 == 0 for p in [tls_dir, *tls_dir.iterdir()])
    finally:
        driver.close()
    assert not tls_dir.exists()


def test_tcp_without_client_certificate_is_a_permanent_error(dockerd: Dockerd) -> None:
    assert dockerd.tcp_url is not None and dockerd.tls is not None
    with (
        DockerDriver(dockerd.tcp_url, tls={"ca_cert": dockerd.tls["ca_cert"]}, timeout=5) as driver,
        pytest.raises(HostError) as caught,
    ):
        driver.inspect("w1")
    assert not caught.value.transient


def test_a_cluster_network_removed_by_another_worker_is_made_again(
    driver: DockerDriver, new_spec: Callable[..., WorkloadSpec], docker_client: docker.DockerClient
) -> None:
    cluster_id = f"cl-{uuid.uuid4().hex[:8]}"
    first = replace(new_spec(), cluster_id=cluster_id)
    driver.ensure(first)  # this process now knows the cluster's network
    # Another worker removes the cluster's last container, and its network with it.
    docker_client.api.remove_container(first.runtime_name, force=True, v=True)
    for network in docker_client.api.networks(names=[cluster_network(cluster_id)]):
        docker_client.api.remove_network(network["Id"])

    second = replace(new_spec(), cluster_id=cluster_id)
    driver.ensure(second)

    made = docker_client.api.networks(names=[cluster_network(cluster_id)])
    attached = engine_attrs(docker_client, second)["HostConfig"]["NetworkMode"]
    driver.remove(second.workload_id)  # the network goes with it
    assert [network["Id"] for network in made] == [attached]
