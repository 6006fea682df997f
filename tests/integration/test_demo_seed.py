"""The `make run` demo, seeded by devstack's own seed code over HTTP, runs the reference
document's examples verbatim on a real dockerd (issue 12, defect 11: both answered
capacity_exceeded on the demo cluster)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import docker
import pytest

from devstack.dockerd import Dockerd
from devstack.seed import ApiClient, Demo, seed
from handlers.app import create_app
from services.deps import Deps
from tests.fixtures.corral import REFERENCE_ALLOCATION, Api, run_jobs
from workers.context import WorkerContext

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


class Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def demo(
    api: Api,
    deps: Deps,
    worker_context: WorkerContext,
    dockerd: Dockerd,
    busybox_image: str,
    tmp_path: Path,
) -> Iterator[Demo]:
    """What `make run` seeds, through the same code and a real HTTP server."""
    server = make_server("127.0.0.1", 0, create_app(deps), handler_class=Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        seeded = seed(ApiClient(url, api.operator_key), dockerd.url, tmp_path)
    finally:
        server.shutdown()
        server.server_close()
    api.tenant_key = seeded.api_key
    yield seeded


def test_the_reference_examples_run_verbatim_on_the_demo(
    api: Api, deps: Deps, demo: Demo, docker_client: docker.DockerClient
) -> None:
    create = {"name": "build-runner", "egg_id": demo.egg_id} | REFERENCE_ALLOCATION
    created = api.tenant("POST", "/containers", create)
    assert created.status_code == 202, created.text
    cid = created.json["container"]["id"]
    run_jobs(deps)
    assert api.tenant("GET", f"/containers/{cid}").json["status"] == "running"

    update = {
        "name": "build-runner-2",
        "egg_id": demo.egg_id,
        "resources": {"ram_mb": 2048, "cpu_cores": 2},
    }
    updated = api.tenant("PATCH", f"/containers/{cid}", update)
    assert updated.status_code == 202, updated.text
    run_jobs(deps)

    container = api.tenant("GET", f"/containers/{cid}").json
    assert container["status"] == "running", container
    assert container["name"] == "build-runner-2"
    host_config = docker_client.containers.get(f"corral-{cid}").attrs["HostConfig"]
    assert (host_config["CpuQuota"], host_config["Memory"]) == (200_000, 2048 * MIB)

    deleted = api.tenant("DELETE", f"/containers/{cid}")
    assert deleted.status_code == 202, deleted.text
    run_jobs(deps)
    assert api.tenant("GET", "/capacity").json["used"]["ram_mb"] == 0


def test_002s_create_and_003s_default_cluster_are_set_on_the_demo(
    api: Api, deps: Deps, demo: Demo
) -> None:
    # curl -X POST http://localhost:3000/api/instances -H "X-API-Key: your-key"
    #   -H "Content-Type: application/json" -d '{"name": "my-bot", "region": "us-east-1"}'
    assert api.tenant_key is not None
    created = api.client.simulate_post(
        "/api/instances",
        headers={"X-API-Key": api.tenant_key, "Content-Type": "application/json"},
        body='{"name": "my-bot", "region": "us-east-1"}',
    )
    assert created.status_code == 201, created.text
    assert (created.json["status"], created.json["region"]) == ("creating", "us-east-1")
    run_jobs(deps)
    got = api.client.simulate_get(
        f"/api/instances/{created.json['id']}", headers={"X-API-Key": api.tenant_key}
    )
    assert got.json["status"] == "running"
    deleted = api.client.simulate_delete(
        f"/api/instances/{created.json['id']}", headers={"X-API-Key": api.tenant_key}
    )
    assert deleted.status_code == 204
    run_jobs(deps)
    # 003's environments name no cluster: they go to the demo's
    settings = api.admin("GET", "/platform/settings").json
    assert settings["default_cluster_id"] == demo.cluster_id
