from __future__ import annotations

import docker
import pytest

from devstack.dockerd import Dockerd
from services.deps import Deps
from tests.fixtures.corral import Api, make_tenant, run_jobs
from workers import context

pytestmark = pytest.mark.integration


def test_create_runs_container(
    api: Api,
    deps: Deps,
    worker_context: context.WorkerContext,
    dockerd: Dockerd,
    busybox_image: str,
    docker_client: docker.DockerClient,
) -> None:
    tenant = make_tenant(api, dockerd.url)
    resp = tenant.create(cpu_cores=0.5, ram_mb=64)
    assert resp.status_code == 202, resp.text
    cid = resp.json["container"]["id"]
    run_jobs(deps)
    got = api.tenant("GET", f"/containers/{cid}").json
    assert got["status"] == "running", got
    c = docker_client.containers.get(f"corral-{cid}")
    assert c.status == "running"
