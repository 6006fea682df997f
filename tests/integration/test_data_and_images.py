"""Data that lasts and images from a registry, through the API against the session's
real dockerd (btrfs with quota groups and the volume plugin) and a real registry."""

from __future__ import annotations

import uuid
from typing import Any

import docker
import docker.errors
import pytest

from devstack.processes import free_port
from devstack.registry import Registry
from services.deps import Deps
from tests.fixtures.corral import Api, Tenant, create_running, run_jobs
from tests.fixtures.registry import AUTH_PASSWORD, AUTH_USER, PushImage

pytestmark = pytest.mark.integration

IDLE = ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"]


def _change(live: Tenant, deps: Deps, method: str, path: str, body: Any) -> dict[str, Any]:
    resp = live.api.tenant(method, path, body)
    assert resp.status_code == 202, resp.text
    run_jobs(deps)
    op: dict[str, Any] = live.api.tenant("GET", f"/operations/{resp.json['operation']['id']}").json
    assert op["status"] == "succeeded", op
    return op


def _sh(docker_client: docker.DockerClient, container_id: str, script: str) -> tuple[int, str]:
    container = docker_client.containers.get(f"corral-{container_id}")
    result = container.exec_run(["/bin/sh", "-c", script])
    output = result.output
    assert isinstance(output, bytes) and result.exit_code is not None
    return result.exit_code, output.decode(errors="replace")


def _allow_egg(api: Api, cluster_id: str, *egg_ids: str) -> None:
    resp = api.admin("PATCH", f"/clusters/{cluster_id}", {"egg_ids": list(egg_ids)})
    assert resp.status_code == 200, resp.text


def test_data_survives_restart_resize_and_egg_switch_and_goes_with_delete(
    live: Tenant, deps: Deps, docker_client: docker.DockerClient
) -> None:
    other = live.api.make_egg(name="other-busybox", command=["/bin/sh", "-c", "exec sleep 3600"])
    _allow_egg(live.api, live.cluster["id"], live.egg["id"], other["id"])
    body = create_running(live, deps, name="keeper")
    cid = body["id"]
    token = uuid.uuid4().hex
    assert _sh(docker_client, cid, f"echo {token} > /data/kept") == (0, "")

    _change(live, deps, "POST", f"/containers/{cid}/power", {"signal": "restart"})
    assert _sh(docker_client, cid, "cat /data/kept") == (0, f"{token}\n")

    _change(live, deps, "PATCH", f"/containers/{cid}", {"resources": {"ram_mb": 96}})
    assert _sh(docker_client, cid, "cat /data/kept") == (0, f"{token}\n")

    before = docker_client.containers.get(f"corral-{cid}").id
    _change(live, deps, "PATCH", f"/containers/{cid}", {"egg_id": other["id"]})
    after = docker_client.containers.get(f"corral-{cid}")
    assert after.id != before, "an egg switch recreates the container"
    assert after.attrs["Config"]["Cmd"] == ["/bin/sh", "-c", "exec sleep 3600"]
    assert _sh(docker_client, cid, "cat /data/kept") == (0, f"{token}\n")

    assert docker_client.volumes.get(f"corral-data-{cid}")
    resp = live.api.tenant("DELETE", f"/containers/{cid}")
    assert resp.status_code == 202, resp.text
    run_jobs(deps)
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(f"corral-{cid}")
    with pytest.raises(docker.errors.NotFound):
        docker_client.volumes.get(f"corral-data-{cid}")


def test_data_path_comes_from_the_egg(
    live: Tenant, deps: Deps, docker_client: docker.DockerClient
) -> None:
    egg = live.api.make_egg(name="srv-egg", data_path="/srv/game")
    assert egg["data_path"] == "/srv/game"
    _allow_egg(live.api, live.cluster["id"], egg["id"])
    body = create_running(live, deps, name="srv", egg_id=egg["id"])
    mounts = docker_client.containers.get(f"corral-{body['id']}").attrs["Mounts"]
    assert [(m["Type"], m["Name"], m["Destination"]) for m in mounts] == [
        ("volume", f"corral-data-{body['id']}", "/srv/game")
    ]


def test_writing_past_storage_mb_fails_and_the_api_says_it_is_enforced(
    live: Tenant, deps: Deps, docker_client: docker.DockerClient
) -> None:
    body = create_running(live, deps, name="small", storage_mb=32)
    assert body["enforcement"]["storage_mb"] == "enforced", body
    for folder in ("/data", "/tmp"):  # the data volume and the container's own filesystem
        code, output = _sh(
            docker_client, body["id"], f"dd if=/dev/zero of={folder}/big bs=1M count=64"
        )
        assert code != 0, output
        assert "Disk quota exceeded" in output or "No space left" in output, output


def _egg_from(api: Api, cluster_id: str, image: str, **fields: Any) -> dict[str, Any]:
    egg = api.make_egg(name=f"pulled-{uuid.uuid4().hex[:6]}", image=image, **fields)
    _allow_egg(api, cluster_id, egg["id"])
    return egg


def _failed_provision(live: Tenant, deps: Deps, egg: dict[str, Any], code: str) -> dict[str, Any]:
    """Create a container from `egg`, run the provisioning: it fails with `code`, and
    the container is in error. Returns the operation."""
    resp = live.create(name=f"fails-{uuid.uuid4().hex[:6]}", egg_id=egg["id"])
    assert resp.status_code == 202, resp.text
    run_jobs(deps)
    op: dict[str, Any] = live.api.tenant("GET", f"/operations/{resp.json['operation']['id']}").json
    assert (op["status"], op["error_code"]) == ("failed", code), op
    container = live.api.tenant("GET", f"/containers/{resp.json['container']['id']}").json
    assert container["status"] == "error", container
    return op


def test_an_image_is_pulled_from_the_registry_on_first_use(
    live: Tenant,
    deps: Deps,
    docker_client: docker.DockerClient,
    registry: Registry,
    push_image: PushImage,
) -> None:
    image = f"{registry.address}/{push_image('open')}"
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(image)
    egg = _egg_from(live.api, live.cluster["id"], image)
    body = create_running(live, deps, name="pulled", egg_id=egg["id"])
    assert docker_client.images.get(image)
    assert docker_client.containers.get(f"corral-{body['id']}").attrs["Config"]["Image"] == image
    op = live.api.tenant("GET", f"/operations/{body['last_operation']}").json
    assert op["status"] == "succeeded" and op["progress"] == f"pulled {image}", op


@pytest.mark.parametrize(
    ("what", "code"),
    [("missing", "image_not_found"), ("no-credentials", "registry_denied")],
)
def test_a_registry_that_refuses_fails_the_operation_clearly(
    live: Tenant,
    deps: Deps,
    registry: Registry,
    auth_registry: Registry,
    push_image: PushImage,
    what: str,
    code: str,
) -> None:
    if what == "missing":
        image = f"{registry.address}/corral/nothing-here:1"
    else:
        image = f"{auth_registry.address}/{push_image('private-anon')}"
    op = _failed_provision(live, deps, _egg_from(live.api, live.cluster["id"], image), code)
    # plain words naming the egg's image (which tenants see anyway), not the engine's own
    assert image in op["error"] and "manifest" not in op["error"], op


def test_credentials_open_a_private_registry_and_wrong_ones_are_refused(
    live: Tenant,
    deps: Deps,
    docker_client: docker.DockerClient,
    auth_registry: Registry,
    push_image: PushImage,
) -> None:
    image = f"{auth_registry.address}/{push_image('private')}"
    right = {"username": AUTH_USER, "password": AUTH_PASSWORD}
    wrong = {"username": AUTH_USER, "password": "not-the-password"}
    refused = _egg_from(live.api, live.cluster["id"], image, registry_auth=wrong)
    op = _failed_provision(live, deps, refused, "registry_denied")
    assert "not-the-password" not in str(op)

    egg = _egg_from(live.api, live.cluster["id"], image, registry_auth=right)
    body = create_running(live, deps, name="private", egg_id=egg["id"])
    assert docker_client.images.get(image)
    assert docker_client.containers.get(f"corral-{body['id']}").attrs["Config"]["Image"] == image


def test_an_unreachable_registry_fails_the_operation_clearly(
    live: Tenant, deps: Deps, registry: Registry
) -> None:
    host, _, _ = registry.address.partition(":")
    image = f"{host}:{free_port()}/corral/busybox:gone"
    egg = _egg_from(live.api, live.cluster["id"], image)
    _failed_provision(live, deps, egg, "registry_unreachable")


def _operation(api: Api, operation_id: str) -> dict[str, Any]:
    resp = api.admin("GET", f"/operations/{operation_id}")
    assert resp.status_code == 200, resp.text
    return dict(resp.json)


def test_operators_pre_pull_and_remove_images_on_hosts(
    live: Tenant,
    deps: Deps,
    docker_client: docker.DockerClient,
    registry: Registry,
    push_image: PushImage,
) -> None:
    image = f"{registry.address}/{push_image('pre-pulled')}"
    resp = live.api.admin("POST", "/images/pull", {"image": image})
    assert resp.status_code == 202, resp.text
    [queued] = resp.json["operations"]
    assert (queued["kind"], queued["status"]) == ("image_pull", "queued")
    assert queued["params"] == {"host_id": live.host["id"], "image": image}
    run_jobs(deps)
    pulled = _operation(live.api, queued["id"])
    assert (pulled["status"], pulled["progress"]) == ("succeeded", f"pulled {image}"), pulled
    assert docker_client.images.get(image)

    egg = _egg_from(live.api, live.cluster["id"], image)
    body = create_running(live, deps, name="user-of-image", egg_id=egg["id"])
    refused = live.api.admin("DELETE", "/images", {"image": image, "host_id": live.host["id"]})
    assert refused.status_code == 409 and refused.json["error"]["code"] == "image_in_use"
    assert docker_client.images.get(image)

    deleted = live.api.tenant("DELETE", f"/containers/{body['id']}")
    assert deleted.status_code == 202, deleted.text
    run_jobs(deps)
    resp = live.api.admin("DELETE", "/images", params={"image": image, "host_id": live.host["id"]})
    assert resp.status_code == 202, resp.text
    run_jobs(deps)
    removed = _operation(live.api, resp.json["operation"]["id"])
    assert (removed["kind"], removed["status"]) == ("image_delete", "succeeded"), removed
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(image)


def test_a_pre_pull_of_a_missing_image_fails_its_operation(
    live: Tenant, deps: Deps, registry: Registry
) -> None:
    image = f"{registry.address}/corral/never-pushed:1"
    resp = live.api.admin("POST", "/images/pull", {"image": image, "host_ids": [live.host["id"]]})
    assert resp.status_code == 202, resp.text
    run_jobs(deps)
    op = _operation(live.api, resp.json["operations"][0]["id"])
    assert (op["status"], op["error_code"]) == ("failed", "image_not_found"), op
    assert registry.address in op["error_detail"]  # operators see the engine's words
