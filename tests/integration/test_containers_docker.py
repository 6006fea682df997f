"""The tenant API driving a real dockerd: what the API says matches the engine."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import docker
import pytest
from docker.models.containers import Container

from devstack.dockerd import Dockerd
from devstack.registry import Registry
from infra.table.expression import Expression
from services.deps import Deps
from shared.settings import Settings
from tests.fixtures.corral import Api, Tenant, create_running, make_tenant, run_jobs
from workers import context

pytestmark = pytest.mark.integration


def _container(docker_client: docker.DockerClient, container_id: str) -> Container:
    return docker_client.containers.get(f"corral-{container_id}")


def _counters(api: Api) -> dict[str, Any]:
    used: dict[str, Any] = api.tenant("GET", "/capacity").json["used"]
    return used


def test_create_applies_limits_and_labels(
    live: Tenant, deps: Deps, docker_client: docker.DockerClient
) -> None:
    body = create_running(live, deps, name="limits", cpu_cores=0.75, ram_mb=96)
    c = _container(docker_client, body["id"])
    host_config = c.attrs["HostConfig"]
    assert host_config["CpuPeriod"] == 100_000
    assert host_config["CpuQuota"] == 75_000
    assert host_config["Memory"] == 96 * 1024 * 1024
    assert c.labels["io.corral.workload"] == body["id"]
    assert c.labels["io.corral.cluster"] == live.cluster["id"]
    assert body["enforcement"]["cpu_cores"] == "enforced"
    assert body["enforcement"]["ram_mb"] == "enforced"
    # the session's dockerd runs on btrfs with the volume plugin: sizes are enforced
    assert body["enforcement"]["storage_mb"] == "enforced"
    op = live.api.tenant("GET", f"/operations/{body['last_operation']}").json
    assert op["status"] == "succeeded"


def test_resize_changes_live_limits(
    live: Tenant, deps: Deps, docker_client: docker.DockerClient
) -> None:
    body = create_running(live, deps, name="resize", cpu_cores=0.5, ram_mb=64)
    resp = live.api.tenant(
        "PATCH", f"/containers/{body['id']}", {"resources": {"cpu_cores": 1.25, "ram_mb": 128}}
    )
    assert resp.status_code == 202, resp.text
    assert _counters(live.api)["ram_mb"] == 128
    run_jobs(deps)
    c = _container(docker_client, body["id"])
    assert c.attrs["HostConfig"]["CpuQuota"] == 125_000
    assert c.attrs["HostConfig"]["Memory"] == 128 * 1024 * 1024
    assert c.status == "running"
    got = live.api.tenant("GET", f"/containers/{body['id']}").json
    assert got["resources"]["cpu_cores"] == 1.25 and got["status"] == "running"


@pytest.mark.parametrize(
    ("signal_name", "engine_status", "api_status"),
    [("stop", "exited", "stopped"), ("kill", "exited", "stopped"), ("pause", "paused", "paused")],
)
def test_power_signals_reach_the_engine(
    live: Tenant,
    deps: Deps,
    docker_client: docker.DockerClient,
    signal_name: str,
    engine_status: str,
    api_status: str,
) -> None:
    body = create_running(live, deps, name=f"power-{signal_name}")
    resp = live.api.tenant("POST", f"/containers/{body['id']}/power", {"signal": signal_name})
    assert resp.status_code == 202, resp.text
    run_jobs(deps)
    assert _container(docker_client, body["id"]).status == engine_status
    assert live.api.tenant("GET", f"/containers/{body['id']}").json["status"] == api_status
    back = {"stopped": "start", "paused": "resume"}[api_status]
    live.api.tenant("POST", f"/containers/{body['id']}/power", {"signal": back})
    run_jobs(deps)
    assert _container(docker_client, body["id"]).status == "running"
    assert live.api.tenant("GET", f"/containers/{body['id']}").json["status"] == "running"


def test_restart_starts_a_new_process(
    live: Tenant, deps: Deps, docker_client: docker.DockerClient
) -> None:
    body = create_running(live, deps, name="restart")
    started = _container(docker_client, body["id"]).attrs["State"]["StartedAt"]
    live.api.tenant("POST", f"/containers/{body['id']}/power", {"signal": "restart"})
    run_jobs(deps)
    c = _container(docker_client, body["id"])
    assert c.status == "running"
    assert c.attrs["State"]["StartedAt"] != started


def test_egg_switch_recreates_from_new_image(
    live: Tenant, deps: Deps, docker_client: docker.DockerClient, busybox_image: str
) -> None:
    docker_client.images.get(busybox_image).tag("corral/busybox", "v2")
    other = live.api.make_egg(name="busybox-v2", image="corral/busybox:v2")
    cluster_id = live.cluster["id"]
    live.api.admin("GET", f"/clusters/{cluster_id}")
    # allow the new egg in the cluster by writing the allow-list (operator route comes later)
    deps.repo.db.update(
        f"CLUSTER#{cluster_id}", "#META", Expression().set("egg_ids", [live.egg["id"], other["id"]])
    )
    body = create_running(live, deps, name="switch")
    resp = live.api.tenant("PATCH", f"/containers/{body['id']}", {"egg_id": other["id"]})
    assert resp.status_code == 202, resp.text
    run_jobs(deps)
    c = _container(docker_client, body["id"])
    assert c.attrs["Config"]["Image"] == "corral/busybox:v2"
    assert c.status == "running"
    assert live.api.tenant("GET", f"/containers/{body['id']}").json["egg_id"] == other["id"]


def test_delete_removes_container_and_frees_capacity(
    live: Tenant, deps: Deps, docker_client: docker.DockerClient
) -> None:
    import docker.errors

    body = create_running(live, deps, name="gone", ram_mb=64)
    assert _counters(live.api)["ram_mb"] == 64
    resp = live.api.tenant("DELETE", f"/containers/{body['id']}")
    assert resp.status_code == 202 and resp.json["container"]["status"] == "deleting"
    run_jobs(deps)
    with pytest.raises(docker.errors.NotFound):
        _container(docker_client, body["id"])
    assert _counters(live.api) == {k: 0 for k in _counters(live.api)}
    assert live.api.tenant("GET", f"/containers/{body['id']}").json["status"] == "deleted"
    assert live.api.tenant("GET", "/containers").json == []


def test_failure_leaves_error_with_reason(
    api: Api,
    deps: Deps,
    worker_context: context.WorkerContext,
    dockerd: Dockerd,
    busybox_image: str,
    registry: Registry,
) -> None:
    tenant = make_tenant(api, dockerd.url)
    missing = api.make_egg(name="missing-image", image=f"{registry.address}/corral/nothing:1")
    deps.repo.db.update(
        f"CLUSTER#{tenant.cluster['id']}", "#META", Expression().set("egg_ids", [missing["id"]])
    )
    resp = api.tenant("POST", "/containers", {"name": "broken", "egg_id": missing["id"]})
    assert resp.status_code == 202, resp.text
    run_jobs(deps)
    body = api.tenant("GET", f"/containers/{resp.json['container']['id']}").json
    assert body["status"] == "error"
    assert "corral/nothing:1" in body["error"]
    op = api.tenant("GET", f"/operations/{resp.json['operation']['id']}").json
    assert op["status"] == "failed" and op["error"] == body["error"]


@pytest.mark.parametrize("worker_class", ["rq.Worker", "workers.worker.CorralWorker"])
def test_worker_killed_mid_provision_converges(
    live: Tenant,
    deps: Deps,
    settings: Settings,
    docker_client: docker.DockerClient,
    dockerd: Dockerd,
    worker_class: str,
) -> None:
    """A real `rq worker` (rq's forking one, and Corral's that runs jobs in its own
    process) is SIGKILLed while provisioning; re-running the job leaves exactly one
    container and exact counters."""
    resp = live.create(name="crash", ram_mb=64)
    workload_id = resp.json["container"]["id"]
    op_id = resp.json["operation"]["id"]
    env = _worker_env(settings)
    # Freeze the engine so the worker is caught inside the job, then kill it.
    dockerd_pid = dockerd.pid
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rq.cli",
            "worker",
            "--burst",
            "--worker-class",
            worker_class,
            "-u",
            settings.redis_url,
            "--serializer",
            "rq.serializers.JSONSerializer",
            settings.queue_name,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        os.kill(dockerd_pid, signal.SIGSTOP)
        _wait(lambda: live.api.tenant("GET", f"/operations/{op_id}").json["status"] == "running")
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        os.kill(dockerd_pid, signal.SIGCONT)
    assert live.api.tenant("GET", f"/containers/{workload_id}").json["status"] == "provisioning"

    # Whatever the dead worker got done, make sure the container exists already, as
    # a worker killed right after creating it would have left it.
    from infra.drivers.docker.driver import DockerDriver
    from workers.jobs import spec_for

    workload = deps.repo.workloads.get(live.cluster["id"], workload_id)
    egg = deps.repo.eggs.get(workload.egg_id)
    DockerDriver(dockerd.url).ensure(spec_for(workload, egg))

    # The job runs again (as the reconciler does for a dead worker's job), then once more.
    op = deps.repo.operations.get(live.cluster["id"], op_id)
    assert deps.jobs.requeue_operation(op)
    run_jobs(deps)
    deps.jobs.requeue_operation(op)
    run_jobs(deps)

    matching = docker_client.containers.list(
        all=True, filters={"label": f"io.corral.workload={workload_id}"}
    )
    assert len(matching) == 1 and matching[0].status == "running"
    assert live.api.tenant("GET", f"/containers/{workload_id}").json["status"] == "running"
    used = _counters(live.api)
    assert used["ram_mb"] == 64 and used["containers"] == 1


def _worker_env(settings: Settings) -> dict[str, str]:
    """The environment of a worker run as its own process: this test's table and Redis."""
    assert settings.dynamodb_endpoint is not None  # the fixtures' table server
    return os.environ | {
        "CORRAL_TABLE": settings.table_name,
        "CORRAL_DYNAMODB_ENDPOINT": settings.dynamodb_endpoint,
        "CORRAL_REDIS_URL": settings.redis_url,
    }


def _wait(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def test_corral_worker_class_runs_jobs_in_its_own_process(
    live: Tenant, deps: Deps, settings: Settings, docker_client: docker.DockerClient
) -> None:
    """The worker `make run` and the deployment guide start: jobs in the worker's
    long-lived process with Corral's job code preloaded, as a real process."""
    resp = live.create(name="forked")
    cid = resp.json["container"]["id"]
    env = _worker_env(settings)
    done = subprocess.run(
        [sys.executable, "-m", "rq.cli", "worker", "--burst",
         "--worker-class", "workers.worker.CorralWorker",
         "--serializer", "rq.serializers.JSONSerializer",
         "-u", settings.redis_url, settings.queue_name],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert live.api.tenant("GET", f"/containers/{cid}").json["status"] == "running"
    assert docker_client.containers.get(f"corral-{cid}").status == "running"


def test_a_job_past_its_timeout_is_recorded_failed_and_the_workload_moves_on(
    live: Tenant,
    deps: Deps,
    settings: Settings,
    docker_client: docker.DockerClient,
    dockerd: Dockerd,
) -> None:
    """A provision hangs (the engine frozen) past its job's timeout in a real Corral
    worker: the job is stopped, the operation recorded failed, and the container
    takes its next change (a delete) once the engine answers again."""
    from rq.job import Job as RqJob
    from rq.serializers import JSONSerializer

    from infra.queue import JobQueue

    resp = live.create(name="hangs", ram_mb=64)
    workload_id = resp.json["container"]["id"]
    op_id = resp.json["operation"]["id"]
    # The same job with a 2 s timeout instead of the default ten minutes.
    RqJob.fetch(op_id, connection=deps.redis, serializer=JSONSerializer).delete()
    op = deps.repo.operations.get(live.cluster["id"], op_id)
    JobQueue(deps.redis, replace(settings, job_timeout_seconds=2)).enqueue_operation(op)
    command = [
        sys.executable, "-m", "rq.cli", "worker", "--burst",
        "--worker-class", "workers.worker.CorralWorker",
        "--serializer", "rq.serializers.JSONSerializer",
        "-u", settings.redis_url, settings.queue_name,
    ]  # fmt: skip
    os.kill(dockerd.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        done = subprocess.run(
            command, env=_worker_env(settings), capture_output=True, text=True, timeout=60
        )
        took = time.monotonic() - started
    finally:
        os.kill(dockerd.pid, signal.SIGCONT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert took < 30, took  # stopped at its timeout, not by the docker client's own
    op_body = live.api.tenant("GET", f"/operations/{op_id}").json
    assert op_body["status"] == "failed", op_body
    assert op_body["error_code"] == "timed_out", op_body
    assert live.api.tenant("GET", f"/containers/{workload_id}").json["status"] == "error"

    deleted = live.api.tenant("DELETE", f"/containers/{workload_id}")
    assert deleted.status_code == 202, deleted.text
    done = subprocess.run(
        command, env=_worker_env(settings), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    delete_op = live.api.tenant("GET", f"/operations/{deleted.json['operation']['id']}").json
    assert delete_op["status"] == "succeeded", delete_op
    matching = docker_client.containers.list(
        all=True, filters={"label": f"io.corral.workload={workload_id}"}
    )
    assert matching == []
    assert _counters(live.api)["containers"] == 0


def test_tenants_get_a_code_and_plain_words_operators_the_hosts_detail(
    api: Api,
    deps: Deps,
    worker_context: context.WorkerContext,
    dockerd: Dockerd,
    busybox_image: str,
    registry: Registry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 12, defect 8: the host's error (naming its address) was copied verbatim
    into what the tenant reads."""
    tenant = make_tenant(api, dockerd.url)
    missing = api.make_egg(name="missing-image", image=f"{registry.address}/corral/nothing:1")
    deps.repo.db.update(
        f"CLUSTER#{tenant.cluster['id']}", "#META", Expression().set("egg_ids", [missing["id"]])
    )
    resp = api.tenant("POST", "/containers", {"name": "broken", "egg_id": missing["id"]})
    assert resp.status_code == 202, resp.text
    container_id = resp.json["container"]["id"]
    operation_id = resp.json["operation"]["id"]
    with caplog.at_level(logging.WARNING, logger="corral.jobs"):
        run_jobs(deps)

    container = api.tenant("GET", f"/containers/{container_id}").json
    op = api.tenant("GET", f"/operations/{operation_id}").json
    for shown in (container, op):
        assert shown["error_code"] == "image_not_found", shown
        assert "error_detail" not in shown
        assert dockerd.url not in json.dumps(shown) and "docker host" not in json.dumps(shown)
    cluster = f"/clusters/{tenant.cluster['id']}"
    seen_by_operator = [
        api.admin("GET", f"{cluster}/containers/{container_id}").json,
        api.admin("GET", f"{cluster}/operations/{operation_id}").json,
    ]
    for shown in seen_by_operator:
        assert shown["error_code"] == "image_not_found", shown
        assert dockerd.url in shown["error_detail"], shown
    assert dockerd.url in caplog.text  # and the worker log has it
    as_tenant = api.client.simulate_get(
        f"/api/v1{cluster}/operations/{operation_id}",
        headers={"Authorization": f"Bearer {api.tenant_key}"},
    )
    assert as_tenant.status_code == 401  # operator routes take an operator key
