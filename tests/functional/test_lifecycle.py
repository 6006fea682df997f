"""The tenant API driven through a real worker against a real dockerd: every power
signal from the states it is allowed in, the ones it is not, resizes that reach the
engine, deletion that frees the pool."""

from __future__ import annotations

import threading
import time
from typing import Any

import docker
import docker.errors
import falcon.testing
import pytest
from docker.models.containers import Container

from devstack.dockerd import Dockerd
from services.deps import Deps
from tests.fixtures.corral import Api, Tenant, make_tenant, run_jobs
from workers import context

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
# Docker's name for each Corral status.
# Docker states each API status may stand for: a container recreated while stopped
# (an egg switch) was created and never started.
ENGINE_STATES = {"running": {"running"}, "paused": {"paused"}, "stopped": {"exited", "created"}}


def error_code(resp: falcon.testing.Result) -> tuple[int, str]:
    return resp.status_code, resp.json["error"]["code"]


class Driver:
    """Sends requests, runs the worker, and checks both the API and the engine."""

    def __init__(self, api: Api, deps: Deps, docker_client: docker.DockerClient) -> None:
        self.api = api
        self.deps = deps
        self.docker = docker_client

    def engine(self, cid: str) -> Container:
        return self.docker.containers.get(f"corral-{cid}")

    def finish(self, resp: falcon.testing.Result) -> dict[str, Any]:
        """Run the job of an accepted request and return its operation, finished."""
        assert resp.status_code == 202, resp.text
        op_id = resp.json["operation"]["id"]
        run_jobs(self.deps)
        op = self.api.tenant("GET", f"/operations/{op_id}").json
        assert op["status"] == "succeeded", op
        return dict(op)

    def create(self, tenant: Tenant, **fields: Any) -> str:
        resp = tenant.create(**fields)
        self.finish(resp)
        cid = str(resp.json["container"]["id"])
        assert self.status(cid) == "running"
        return cid

    def status(self, cid: str) -> str:
        return str(self.api.tenant("GET", f"/containers/{cid}").json["status"])

    def power(self, cid: str, signal: str) -> falcon.testing.Result:
        return self.api.tenant("POST", f"/containers/{cid}/power", {"signal": signal})

    def assert_in(self, cid: str, status: str) -> None:
        container = self.api.tenant("GET", f"/containers/{cid}").json
        assert container["status"] == status, container
        assert container["pending_operation"] is None
        assert self.engine(cid).status in ENGINE_STATES[status]

    def refused(self, cid: str, *signals: str) -> None:
        for signal in signals:
            assert error_code(self.power(cid, signal)) == (409, "action_not_allowed"), signal


@pytest.fixture
def lifecycle(
    api: Api,
    deps: Deps,
    worker_context: context.WorkerContext,
    dockerd: Dockerd,
    busybox_image: str,
    docker_client: docker.DockerClient,
) -> tuple[Driver, Tenant]:
    return Driver(api, deps, docker_client), make_tenant(api, dockerd.url)


def test_power_signals_walk_the_state_machine(lifecycle: tuple[Driver, Tenant]) -> None:
    driver, tenant = lifecycle
    cid = driver.create(tenant)
    driver.assert_in(cid, "running")

    driver.refused(cid, "start", "resume")
    driver.finish(driver.power(cid, "pause"))
    driver.assert_in(cid, "paused")

    driver.refused(cid, "pause", "start", "restart")
    driver.finish(driver.power(cid, "resume"))
    driver.assert_in(cid, "running")

    started = driver.engine(cid).attrs["State"]["StartedAt"]
    driver.finish(driver.power(cid, "restart"))
    driver.assert_in(cid, "running")
    assert driver.engine(cid).attrs["State"]["StartedAt"] != started

    driver.finish(driver.power(cid, "stop"))
    driver.assert_in(cid, "stopped")

    driver.refused(cid, "stop", "kill", "pause", "resume")
    driver.finish(driver.power(cid, "start"))
    driver.assert_in(cid, "running")

    driver.finish(driver.power(cid, "kill"))
    driver.assert_in(cid, "stopped")

    driver.finish(driver.power(cid, "restart"))  # restart from stopped starts it
    driver.assert_in(cid, "running")

    driver.finish(driver.power(cid, "pause"))
    driver.finish(driver.power(cid, "stop"))  # stop from paused
    driver.assert_in(cid, "stopped")


def test_one_change_at_a_time_while_the_worker_has_not_run(
    lifecycle: tuple[Driver, Tenant],
) -> None:
    driver, tenant = lifecycle
    cid = driver.create(tenant)
    api = driver.api

    pending = driver.power(cid, "stop")
    assert pending.status_code == 202, pending.text
    driver.refused(cid, "start", "stop", "kill")
    assert error_code(api.tenant("PATCH", f"/containers/{cid}", {"name": "x"})) == (
        409,
        "action_not_allowed",
    )
    assert error_code(api.tenant("DELETE", f"/containers/{cid}")) == (409, "action_not_allowed")
    assert driver.engine(cid).status == "running"

    run_jobs(driver.deps)

    driver.assert_in(cid, "stopped")
    assert api.tenant("PATCH", f"/containers/{cid}", {"name": "x"}).status_code == 202


def test_resize_reaches_the_engine_and_moves_the_counters(
    lifecycle: tuple[Driver, Tenant],
) -> None:
    driver, tenant = lifecycle
    api = driver.api
    cid = driver.create(tenant, cpu_cores=0.5, ram_mb=64)
    assert driver.engine(cid).attrs["HostConfig"]["Memory"] == 64 * MIB

    op = driver.finish(
        api.tenant("PATCH", f"/containers/{cid}", {"resources": {"ram_mb": 128, "cpu_cores": 1}})
    )

    assert op["kind"] == "update"
    host_config = driver.engine(cid).attrs["HostConfig"]
    assert host_config["Memory"] == 128 * MIB
    assert host_config["CpuQuota"] / host_config["CpuPeriod"] == 1
    driver.assert_in(cid, "running")
    container = api.tenant("GET", f"/containers/{cid}").json
    assert container["resources"]["ram_mb"] == 128
    assert container["resources"]["storage_mb"] == 256  # kept
    used = api.tenant("GET", "/cluster").json["used"]
    assert used["ram_mb"] == 128
    assert used["cpu_cores"] == 1


def test_rename_keeps_the_container_running(lifecycle: tuple[Driver, Tenant]) -> None:
    driver, tenant = lifecycle
    cid = driver.create(tenant)
    engine_id = driver.engine(cid).id

    driver.finish(driver.api.tenant("PATCH", f"/containers/{cid}", {"name": "renamed"}))

    driver.assert_in(cid, "running")
    assert driver.api.tenant("GET", f"/containers/{cid}").json["name"] == "renamed"
    assert driver.engine(cid).id == engine_id  # the engine-side name is the id's


def test_resize_of_a_stopped_container_keeps_it_stopped(lifecycle: tuple[Driver, Tenant]) -> None:
    driver, tenant = lifecycle
    cid = driver.create(tenant)
    driver.finish(driver.power(cid, "stop"))

    driver.finish(driver.api.tenant("PATCH", f"/containers/{cid}", {"resources": {"ram_mb": 96}}))

    driver.assert_in(cid, "stopped")
    assert driver.engine(cid).attrs["HostConfig"]["Memory"] == 96 * MIB


def switch_egg(
    api: Api,
    deps: Deps,
    dockerd: Dockerd,
    docker_client: docker.DockerClient,
    power: str | None = None,
    image: str = "corral/busybox:latest",
) -> tuple[Driver, str, dict[str, Any], dict[str, Any]]:
    """A container of one egg switched to another egg (of `image`, with its own
    environment); returns the driver, the container id, the old and the new egg."""
    driver = Driver(api, deps, docker_client)
    egg = api.make_egg()
    other = api.make_egg(name="other", image=image, environment={"FLAVOUR": "other"})
    api.make_host(dockerd.url)
    cluster = api.make_cluster([egg["id"], other["id"]])
    api.tenant_key = api.make_key(cluster["id"])
    cid = driver.create(Tenant(api, cluster, egg, {}))
    if power:
        driver.finish(driver.power(cid, power))
    op = driver.finish(api.tenant("PATCH", f"/containers/{cid}", {"egg_id": other["id"]}))
    assert op["params"]["recreate"] is True
    return driver, cid, egg, other


@pytest.mark.parametrize("status", ["running", "paused", "stopped"])
def test_egg_switch_keeps_the_power_state(
    api: Api,
    deps: Deps,
    worker_context: context.WorkerContext,
    dockerd: Dockerd,
    busybox_image: str,
    docker_client: docker.DockerClient,
    status: str,
) -> None:
    signal = {"running": None, "paused": "pause", "stopped": "stop"}[status]
    driver, cid, _, other = switch_egg(api, deps, dockerd, docker_client, signal)

    driver.assert_in(cid, status)
    assert api.tenant("GET", f"/containers/{cid}").json["egg_id"] == other["id"]


def test_egg_switch_to_another_image_recreates_the_container(
    api: Api,
    deps: Deps,
    worker_context: context.WorkerContext,
    dockerd: Dockerd,
    busybox_image: str,
    docker_client: docker.DockerClient,
) -> None:
    docker_client.images.get(busybox_image).tag("corral/busybox-alt", "latest")
    driver, cid, _, other = switch_egg(
        api, deps, dockerd, docker_client, image="corral/busybox-alt:latest"
    )

    driver.assert_in(cid, "running")
    engine = driver.engine(cid)
    assert "FLAVOUR=other" in engine.attrs["Config"]["Env"]
    assert engine.labels["io.corral.egg"] == other["id"]
    assert engine.attrs["Config"]["Image"] == "corral/busybox-alt:latest"


def test_egg_switch_brings_the_new_eggs_environment_to_the_engine(
    api: Api,
    deps: Deps,
    worker_context: context.WorkerContext,
    dockerd: Dockerd,
    busybox_image: str,
    docker_client: docker.DockerClient,
) -> None:
    driver, cid, _, other = switch_egg(api, deps, dockerd, docker_client)

    engine = driver.engine(cid)
    assert "FLAVOUR=other" in engine.attrs["Config"]["Env"]
    assert engine.labels["io.corral.egg"] == other["id"]


def test_delete_removes_the_container_and_frees_the_pool(
    api: Api,
    deps: Deps,
    worker_context: context.WorkerContext,
    dockerd: Dockerd,
    busybox_image: str,
    docker_client: docker.DockerClient,
) -> None:
    driver = Driver(api, deps, docker_client)
    tenant = make_tenant(api, dockerd.url, containers=1)
    cid = driver.create(tenant, ram_mb=128)
    assert error_code(tenant.create()) == (409, "container_limit_reached")

    op = driver.finish(api.tenant("DELETE", f"/containers/{cid}"))

    assert op["kind"] == "delete"
    with pytest.raises(docker.errors.NotFound):
        driver.engine(cid)
    assert api.tenant("GET", "/containers").json == []
    used = api.tenant("GET", "/cluster").json["used"]
    assert set(used.values()) == {0}, used
    host = api.admin("GET", f"/hosts/{tenant.host['id']}").json
    assert host["workload_count"] == 0
    assert host["used"]["ram_mb"] == 0
    for method, path, body in [
        ("PATCH", f"/containers/{cid}", {"name": "x"}),
        ("DELETE", f"/containers/{cid}", None),
        ("POST", f"/containers/{cid}/power", {"signal": "start"}),
    ]:
        assert error_code(api.tenant(method, path, body)) == (404, "not_found"), method
    # The slot is free again.
    assert driver.create(tenant)


def test_delete_of_a_paused_container(lifecycle: tuple[Driver, Tenant]) -> None:
    driver, tenant = lifecycle
    cid = driver.create(tenant)
    driver.finish(driver.power(cid, "pause"))

    driver.finish(driver.api.tenant("DELETE", f"/containers/{cid}"))

    with pytest.raises(docker.errors.NotFound):
        driver.engine(cid)
    assert driver.api.tenant("GET", "/containers").json == []


def test_wait_answers_when_the_worker_finishes(lifecycle: tuple[Driver, Tenant]) -> None:
    driver, tenant = lifecycle
    api = driver.api
    created = tenant.create()
    op_id = created.json["operation"]["id"]

    early = api.tenant("GET", f"/operations/{op_id}/wait", params={"timeout": "0.2"})
    assert early.json["status"] == "queued"

    result: dict[str, Any] = {}

    def wait() -> None:
        result["resp"] = api.tenant("GET", f"/operations/{op_id}/wait", params={"timeout": 5})
        result["at"] = time.monotonic()

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.2)
    run_jobs(driver.deps)
    finished = time.monotonic()
    waiter.join(timeout=10)

    assert result["resp"].json["status"] == "succeeded"
    assert result["at"] - finished < 2.0
    assert result["resp"].json["started_at"] is not None
    assert result["resp"].json["finished_at"] is not None
