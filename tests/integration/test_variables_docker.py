"""Egg variables on a real dockerd: the process sees them, a change recreates it."""

from __future__ import annotations

from typing import Any

import docker
import pytest

from devstack.dockerd import Dockerd
from services.deps import Deps
from tests.fixtures.corral import Api, error_of, run_jobs
from workers import context

pytestmark = pytest.mark.integration

SERVE = (
    "echo \"level=$LEVEL build=$BUILD\"; trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"
)


@pytest.fixture
def egg(
    api: Api,
    deps: Deps,
    worker_context: context.WorkerContext,
    dockerd: Dockerd,
    busybox_image: str,
) -> dict[str, Any]:
    egg = api.make_egg(
        name="vars",
        command=["/bin/sh", "-c", SERVE],
        variables=[
            {"name": "Level", "env": "LEVEL", "default": "world", "rules": {"pattern": "[a-z]+"}},
            {"name": "Build", "env": "BUILD", "default": "stable", "user_editable": False},
        ],
    )
    api.make_host(dockerd.url)
    cluster = api.make_cluster([egg["id"]])
    api.tenant_key = api.make_key(cluster["id"])
    return egg


def _env(docker_client: docker.DockerClient, container_id: str) -> dict[str, str]:
    container = docker_client.containers.get(f"corral-{container_id}")
    output = container.exec_run(["/bin/sh", "-c", "echo $LEVEL,$BUILD"]).output
    assert isinstance(output, bytes)
    level, build = output.decode().strip().split(",")
    return {"LEVEL": level, "BUILD": build, "id": str(container.id)}


def test_variables_reach_the_process_and_a_change_recreates_it(
    api: Api, deps: Deps, egg: dict[str, Any], docker_client: docker.DockerClient
) -> None:
    created = api.tenant(
        "POST",
        "/containers",
        {"name": "g", "egg_id": egg["id"], "environment": {"LEVEL": "nether"}},
    )
    assert created.status_code == 202, created.text
    container_id = created.json["container"]["id"]
    run_jobs(deps)
    first = _env(docker_client, container_id)
    assert (first["LEVEL"], first["BUILD"]) == ("nether", "stable")
    logs = docker_client.containers.get(f"corral-{container_id}").logs().decode()
    assert "level=nether build=stable" in logs, logs

    # a rename alone leaves the container as it is
    renamed = api.tenant("PATCH", f"/containers/{container_id}", {"name": "g2"})
    assert renamed.status_code == 202, renamed.text
    run_jobs(deps)
    assert _env(docker_client, container_id)["id"] == first["id"]

    changed = api.tenant("PATCH", f"/containers/{container_id}", {"environment": {"LEVEL": "end"}})
    assert changed.status_code == 202, changed.text
    op = changed.json["operation"]
    assert op["kind"] == "update"
    assert op["params"]["environment"] == {"LEVEL": "end"}
    assert op["params"]["recreate"] is True
    run_jobs(deps)
    shown = api.tenant("GET", f"/containers/{container_id}").json
    assert shown["status"] == "running", shown
    assert shown["environment"] == {"LEVEL": "end"}
    after = _env(docker_client, container_id)
    assert (after["LEVEL"], after["BUILD"]) == ("end", "stable")
    assert after["id"] != first["id"]
    assert api.tenant("GET", f"/operations/{op['id']}").json["status"] == "succeeded"

    same = api.tenant("PATCH", f"/containers/{container_id}", {"environment": {"LEVEL": "end"}})
    assert error_of(same) == (400, "invalid_input")
    bad = api.tenant("PATCH", f"/containers/{container_id}", {"environment": {"LEVEL": "END!"}})
    assert error_of(bad) == (400, "invalid_input")
    assert "LEVEL" in bad.json["error"]["message"]
