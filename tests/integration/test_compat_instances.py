"""002's instances API replayed as its document writes it, on a real dockerd: create
(201), pause ({"status": "paused"}), restart ({"status": "restarted"}), health, delete
(204), with what the engine does checked behind each answer."""

from __future__ import annotations

import docker
import falcon.testing
import pytest

from services.deps import Deps
from tests.fixtures.corral import Api, LiveTenant, Tenant, run_jobs

pytestmark = pytest.mark.integration


@pytest.fixture
def regional(live_tenant: LiveTenant) -> Tenant:
    """A regional tenant whose host is in a region, and whose cluster makes instances from
    its egg (the operator's part)."""
    tenant = live_tenant(host={"labels": {"region": "us-east-1"}})
    config = {"config": {"default_egg_id": tenant.egg["id"]}}
    assert tenant.api.admin("PATCH", f"/clusters/{tenant.cluster['id']}", config).status_code == 200
    return tenant


def curl(api: Api, method: str, path: str, body: str | None = None) -> falcon.testing.Result:
    """As 002's curl examples: `-H "X-API-Key: your-key"`, JSON when there is a body."""
    assert api.tenant_key is not None
    headers = {"X-API-Key": api.tenant_key}
    if body is not None:
        headers["Content-Type"] = "application/json"
    return api.client.simulate_request(method, path, headers=headers, body=body)


def test_an_instance_lives_as_002_says(
    regional: Tenant, deps: Deps, docker_client: docker.DockerClient
) -> None:
    api = regional.api
    created = curl(api, "POST", "/api/instances", '{"name": "my-bot", "region": "us-east-1"}')
    assert created.status_code == 201, created.text
    instance_id = created.json["id"]
    assert created.json["status"] == "creating"
    run_jobs(deps)

    running = curl(api, "GET", f"/api/instances/{instance_id}")
    assert (running.json["status"], running.json["region"]) == ("running", "us-east-1")
    engine = docker_client.containers.get(f"corral-{instance_id}")
    assert engine.status == "running"

    paused = curl(api, "POST", f"/api/instances/{instance_id}/pause")
    assert (paused.status_code, paused.json) == (200, {"status": "paused"})
    run_jobs(deps)
    engine.reload()
    assert engine.status == "paused"
    assert curl(api, "GET", f"/api/instances/{instance_id}").json["status"] == "paused"

    # 002: paused is "suspended, can be restarted"
    restarted = curl(api, "POST", f"/api/instances/{instance_id}/restart")
    assert (restarted.status_code, restarted.json) == (200, {"status": "restarted"})
    run_jobs(deps)
    engine.reload()
    assert engine.status == "running"
    assert curl(api, "GET", f"/api/instances/{instance_id}").json["status"] == "running"

    health = curl(api, "GET", f"/api/instances/{instance_id}/health")
    assert health.status_code == 200
    assert set(health.json) >= {
        "cpu_percent",
        "memory_mb",
        "disk_mb",
        "last_heartbeat",
        "uptime_secs",
    }

    deleted = curl(api, "DELETE", f"/api/instances/{instance_id}")
    assert deleted.status_code == 204 and not deleted.content
    run_jobs(deps)
    assert curl(api, "GET", f"/api/instances/{instance_id}").status_code == 404
    assert curl(api, "GET", "/api/instances").json == []
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(f"corral-{instance_id}")
