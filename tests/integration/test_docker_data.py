"""The docker driver's archive calls on a data path that is a volume (the API tests
cover one in the container's own filesystem): the restore empties the volume through a
helper container from the workload's image, puts the archive back, and leaves no helper."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import docker
import pytest
from docker.models.containers import Container

from devstack.dockerd import Dockerd
from infra.drivers.docker.driver import DockerDriver
from shared.backups import BackupRefused
from shared.clock import new_id

pytestmark = pytest.mark.integration

WRITER = (
    "mkdir -p /data/sub && echo one > /data/a && echo two > /data/sub/b; "
    "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"
)
LIST = "cd /data && find . | sort && cat a sub/b"


@pytest.fixture
def with_volume(
    docker_client: docker.DockerClient, busybox_image: str
) -> Iterator[tuple[str, Container]]:
    workload_id = new_id()
    volume = docker_client.volumes.create(f"corral-test-{workload_id}")
    container = docker_client.containers.run(
        busybox_image,
        ["/bin/sh", "-c", WRITER],
        name=f"corral-{workload_id}",
        volumes={volume.name: {"bind": "/data", "mode": "rw"}},
        detach=True,
    )
    try:
        yield workload_id, container
    finally:
        container.remove(force=True)
        volume.remove(force=True)


def _listing(container: Container) -> str:
    for _ in range(100):
        code, out = container.exec_run(["/bin/sh", "-c", LIST])
        if code == 0 and isinstance(out, bytes):
            return out.decode()
        threading.Event().wait(0.1)
    raise AssertionError("the container did not write its data within 10 s")


def test_a_volume_is_emptied_and_restored(
    dockerd: Dockerd, docker_client: docker.DockerClient, with_volume: tuple[str, Container]
) -> None:
    workload_id, container = with_volume
    before = _listing(container)
    with DockerDriver(dockerd.url) as driver:
        archive = b"".join(driver.archive_data(workload_id, "/data"))
        container.exec_run(["/bin/sh", "-c", "rm /data/a && echo stray > /data/stray"])
        container.stop(timeout=5)
        halves = [archive[: len(archive) // 2], archive[len(archive) // 2 :]]
        driver.restore_data(workload_id, "/data", iter(halves))
    container.start()
    assert _listing(container) == before  # a is back, stray is gone
    helpers = docker_client.containers.list(all=True, filters={"label": "io.corral.helper"})
    assert helpers == []


def test_a_missing_data_path_is_no_data(
    dockerd: Dockerd, with_volume: tuple[str, Container]
) -> None:
    workload_id, _ = with_volume
    with DockerDriver(dockerd.url) as driver, pytest.raises(BackupRefused) as refused:
        list(driver.archive_data(workload_id, "/no/such/path"))
    assert refused.value.code == "no_data"
