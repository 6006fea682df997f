import pytest

from tests.fixtures.corral import make_tenant, run_jobs

pytestmark = pytest.mark.integration


def test_create_runs_container(api, deps, worker_context, dockerd, busybox_image, docker_client):
    tenant = make_tenant(api, dockerd.url)
    resp = tenant.create(cpu_cores=0.5, ram_mb=64)
    assert resp.status_code == 202, resp.text
    cid = resp.json["container"]["id"]
    run_jobs(deps)
    got = api.tenant("GET", f"/containers/{cid}").json
    assert got["status"] == "running", got
    c = docker_client.containers.get(f"corral-{cid}")
    assert c.status == "running"
