"""Backups through the tenant API against the real dockerd, into a folder and into an
S3-compatible bucket (moto's server): files a container's process wrote are archived,
deleted, restored, and come back byte for byte."""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from pathlib import Path
from typing import Any

import boto3
import docker
import pytest

from infra.archives.store import ArchiveMissing, ArchiveStore, StoreFailed, store_for
from services.deps import Deps
from shared.settings import Settings
from tests.fixtures.corral import LiveTenant, Tenant, error_of, run_jobs
from workers import context

pytestmark = pytest.mark.integration

# The egg's process writes its data on its first start, then idles: a text file, a file
# in a folder, and a 9 MiB random one (over the S3 store's 8 MiB part size: a multipart
# upload), last.
WRITER = (
    "if [ ! -e /data/greeting.txt ]; then mkdir -p /data/logs && echo hello > /data/greeting.txt"
    " && echo nested > /data/logs/first.log"
    " && head -c 9437184 /dev/urandom > /data/.blob && mv /data/.blob /data/blob.bin; fi; "
    "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"
)
LIST_SUMS = "cd /data && find . -type f | sort | xargs sha256sum"


def _s3_settings(base: Settings, endpoint: str) -> Settings:
    bucket = f"backups-{base.table_name}".lower()[:63]
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    return dataclasses.replace(
        base,
        backup_store="s3",
        backup_s3_bucket=bucket,
        backup_s3_endpoint=endpoint,
        backup_s3_access_key_id="testing",
        backup_s3_secret_access_key="testing",
    )


@pytest.fixture
def store_kind() -> str:
    """Which backup store a test's Corral uses; the round trip runs on both."""
    return "folder"


@pytest.fixture
def settings(
    request: pytest.FixtureRequest, settings: Settings, tmp_path: Path, store_kind: str
) -> Settings:
    folder = dataclasses.replace(settings, backup_folder=str(tmp_path / "backups"))
    if store_kind == "folder":
        return folder
    return _s3_settings(folder, request.getfixturevalue("s3_endpoint"))


@pytest.fixture
def store(settings: Settings) -> ArchiveStore:
    return store_for(settings)


@pytest.fixture
def writer(live_tenant: LiveTenant) -> Tenant:
    """A writer tenant whose egg's process writes its data, with room for 4 backups."""
    return live_tenant(backups=4, egg={"name": "writer", "command": ["/bin/sh", "-c", WRITER]})


def _running(writer: Tenant, deps: Deps, backups: int = 2) -> str:
    resp = writer.create(name="data", backups=backups)
    assert resp.status_code == 202, resp.text
    run_jobs(deps)
    container_id = str(resp.json["container"]["id"])
    assert writer.api.tenant("GET", f"/containers/{container_id}").json["status"] == "running"
    return container_id


def _exec(docker_client: docker.DockerClient, container_id: str, script: str) -> str:
    container = docker_client.containers.get(f"corral-{container_id}")
    code, output = container.exec_run(["/bin/sh", "-c", script])
    assert code == 0 and isinstance(output, bytes), output
    return output.decode()


def _sums_when_written(docker_client: docker.DockerClient, container_id: str) -> str:
    """The data's checksums once the process has written all of it (blob.bin last)."""
    container = docker_client.containers.get(f"corral-{container_id}")
    for _ in range(100):
        # while the writer renames .blob to blob.bin, a listing may fail: look again
        code, output = container.exec_run(["/bin/sh", "-c", LIST_SUMS])
        if code == 0 and isinstance(output, bytes) and b"blob.bin" in output:
            return output.decode()
        threading.Event().wait(0.1)
    raise AssertionError("the container's process did not write its data within 10 s")


def _backup(writer: Tenant, deps: Deps, container_id: str, **body: Any) -> dict[str, Any]:
    resp = writer.api.tenant("POST", f"/containers/{container_id}/backups", body or None)
    assert resp.status_code == 202, resp.text
    assert resp.json["backup"]["status"] == "creating"
    assert resp.json["operation"]["kind"] == "backup"
    run_jobs(deps)
    backup = writer.api.tenant(
        "GET", f"/containers/{container_id}/backups/{resp.json['backup']['id']}"
    ).json
    return dict(backup)


def _backed_up(
    writer: Tenant, deps: Deps, docker_client: docker.DockerClient
) -> tuple[str, dict[str, Any], str]:
    """A running container with its data written, one ready backup of it, and the
    backup's key in the store."""
    container_id = _running(writer, deps)
    _sums_when_written(docker_client, container_id)
    backup = _backup(writer, deps, container_id)
    assert backup["status"] == "ready", backup
    return container_id, backup, f"{writer.cluster['id']}/{container_id}/{backup['id']}.tar"


def _operation(writer: Tenant, operation_id: str) -> dict[str, Any]:
    return dict(writer.api.tenant("GET", f"/operations/{operation_id}").json)


@pytest.mark.parametrize("store_kind", ["folder", "s3"])
def test_backup_delete_restore_brings_the_files_back(
    writer: Tenant, deps: Deps, docker_client: docker.DockerClient, store: ArchiveStore
) -> None:
    container_id = _running(writer, deps)
    before = _sums_when_written(docker_client, container_id)

    backup = _backup(writer, deps, container_id, name="nightly")
    assert backup["status"] == "ready", backup
    assert backup["name"] == "nightly" and backup["container_id"] == container_id
    assert backup["size_bytes"] > 9437184
    assert len(backup["checksum"]) == 64
    assert _operation(writer, backup["last_operation"])["status"] == "succeeded"

    path = f"/containers/{container_id}/backups/{backup['id']}"
    download = writer.api.tenant("GET", f"{path}/download")
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/x-tar"
    assert len(download.content) == backup["size_bytes"]
    assert hashlib.sha256(download.content).hexdigest() == backup["checksum"]
    assert download.headers["x-checksum-sha256"] == backup["checksum"]

    _exec(docker_client, container_id, "rm -rf /data/* && echo stray > /data/stray.txt")
    assert "greeting.txt" not in _exec(docker_client, container_id, LIST_SUMS)

    resp = writer.api.tenant("POST", f"{path}/restore")
    assert resp.status_code == 202, resp.text
    assert resp.json["backup"]["status"] == "restoring"
    assert resp.json["operation"]["kind"] == "restore"
    run_jobs(deps)
    assert _operation(writer, resp.json["operation"]["id"])["status"] == "succeeded"
    assert _exec(docker_client, container_id, LIST_SUMS) == before  # stray.txt is gone too
    assert docker_client.containers.get(f"corral-{container_id}").status == "running"
    got = writer.api.tenant("GET", f"/containers/{container_id}").json
    assert got["status"] == "running"
    assert writer.api.tenant("GET", path).json["status"] == "ready"

    listed = writer.api.tenant("GET", f"/containers/{container_id}/backups").json
    assert [b["id"] for b in listed] == [backup["id"]]


def test_a_stopped_container_is_restored_and_stays_stopped(
    writer: Tenant, deps: Deps, docker_client: docker.DockerClient
) -> None:
    container_id = _running(writer, deps)
    before = _sums_when_written(docker_client, container_id)
    backup = _backup(writer, deps, container_id)
    _exec(docker_client, container_id, "echo changed > /data/greeting.txt")
    writer.api.tenant("POST", f"/containers/{container_id}/power", {"signal": "stop"})
    run_jobs(deps)
    resp = writer.api.tenant("POST", f"/containers/{container_id}/backups/{backup['id']}/restore")
    assert resp.status_code == 202, resp.text
    run_jobs(deps)
    assert writer.api.tenant("GET", f"/containers/{container_id}").json["status"] == "stopped"
    assert docker_client.containers.get(f"corral-{container_id}").status == "exited"
    writer.api.tenant("POST", f"/containers/{container_id}/power", {"signal": "start"})
    run_jobs(deps)
    assert _exec(docker_client, container_id, LIST_SUMS) == before


def test_a_tampered_archive_is_not_restored(
    writer: Tenant, deps: Deps, docker_client: docker.DockerClient, store: ArchiveStore
) -> None:
    container_id, backup, key = _backed_up(writer, deps, docker_client)
    store.put(key, [b"not the archive that was taken"])
    _exec(docker_client, container_id, "echo after > /data/after.txt")

    resp = writer.api.tenant("POST", f"/containers/{container_id}/backups/{backup['id']}/restore")
    assert resp.status_code == 202, resp.text
    run_jobs(deps)
    op = _operation(writer, resp.json["operation"]["id"])
    assert op["status"] == "failed" and op["error_code"] == "checksum_mismatch", op
    # untouched: still running, with what it had
    assert writer.api.tenant("GET", f"/containers/{container_id}").json["status"] == "running"
    assert "after.txt" in _exec(docker_client, container_id, LIST_SUMS)
    path = f"/containers/{container_id}/backups/{backup['id']}"
    assert writer.api.tenant("GET", path).json["status"] == "ready"

    store.delete(key)  # gone behind Corral's back
    assert error_of(writer.api.tenant("GET", f"{path}/download")) == (404, "not_found")
    resp = writer.api.tenant("POST", f"{path}/restore")
    run_jobs(deps)
    op = _operation(writer, resp.json["operation"]["id"])
    assert op["status"] == "failed" and op["error_code"] == "archive_missing", op
    assert writer.api.tenant("GET", f"/containers/{container_id}").json["status"] == "running"


def test_a_bucket_that_is_not_there_is_a_store_failure(
    s3_endpoint: str, settings: Settings
) -> None:
    store = store_for(
        dataclasses.replace(
            settings,
            backup_store="s3",
            backup_s3_bucket="no-such-bucket",
            backup_s3_endpoint=s3_endpoint,
            backup_s3_access_key_id="testing",
            backup_s3_secret_access_key="testing",
        )
    )
    with pytest.raises(StoreFailed, match="no-such-bucket"):
        store.put("c/w/b.tar", [b"x" * 1024])
    with pytest.raises(StoreFailed):
        store.read("c/w/b.tar")


def test_a_container_with_no_data_gets_no_backup(
    writer: Tenant, deps: Deps, store: ArchiveStore
) -> None:
    empty = writer.api.make_egg(
        name="empty",
        command=["/bin/sh", "-c", "mkdir -p /data; trap 'exit 0' TERM; while :; do sleep 1; done"],
    )
    elsewhere = writer.api.make_egg(name="elsewhere", data_path="/nowhere/at/all")
    writer.api.admin(
        "PATCH", f"/clusters/{writer.cluster['id']}", {"egg_ids": [empty["id"], elsewhere["id"]]}
    )
    for egg in (empty, elsewhere):
        resp = writer.create(name=egg["name"], egg_id=egg["id"], backups=1)
        assert resp.status_code == 202, resp.text
        run_jobs(deps)
        container_id = resp.json["container"]["id"]
        backup = _backup(writer, deps, container_id)
        assert backup["status"] == "failed" and backup["error_code"] == "no_data", backup
        op = _operation(writer, backup["last_operation"])
        assert op["status"] == "failed" and op["error_code"] == "no_data"
        assert writer.api.tenant("GET", f"/containers/{container_id}").json["status"] == "running"
        # the failed backup gave its slot back: the one slot takes another backup
        again = writer.api.tenant("POST", f"/containers/{container_id}/backups")
        assert again.status_code == 202, again.text
        run_jobs(deps)
        key = f"{writer.cluster['id']}/{container_id}/{backup['id']}.tar"
        with pytest.raises(ArchiveMissing):
            list(store.read(key))


def test_backups_take_the_containers_slots_exactly_under_concurrency(
    writer: Tenant, deps: Deps, docker_client: docker.DockerClient, settings: Settings
) -> None:
    container_id = _running(writer, deps, backups=2)
    _sums_when_written(docker_client, container_id)
    path = f"/containers/{container_id}/backups"

    answers: list[int] = []
    barrier = threading.Barrier(6)

    def post() -> None:
        barrier.wait(timeout=10)
        answers.append(writer.api.tenant("POST", path).status_code)

    threads = [threading.Thread(target=post) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # one change at a time per container: one taken, the others refused
    assert sorted(answers) == [202] + [409] * 5, answers
    run_jobs(deps)
    second = writer.api.tenant("POST", path)
    assert second.status_code == 202, second.text
    run_jobs(deps)
    full = writer.api.tenant("POST", path)
    assert error_of(full) == (409, "capacity_exceeded")
    fewer = {"resources": {"backups": 1}}
    shrink = writer.api.tenant("PATCH", f"/containers/{container_id}", fewer)
    assert error_of(shrink) == (400, "invalid_input")

    listed = writer.api.tenant("GET", path).json
    assert [b["status"] for b in listed] == ["ready", "ready"]
    gone = writer.api.tenant("DELETE", f"{path}/{listed[0]['id']}")
    assert gone.status_code == 202, gone.text
    assert gone.json["backup"]["status"] == "deleting"
    assert gone.json["operation"]["kind"] == "delete_backup"
    run_jobs(deps)
    assert error_of(writer.api.tenant("GET", f"{path}/{listed[0]['id']}")) == (404, "not_found")
    assert writer.api.tenant("POST", path).status_code == 202  # the slot is free again
    run_jobs(deps)
    workload = deps.repo.workloads.get(writer.cluster["id"], container_id)
    assert workload.backup_count == 2


def test_deleting_a_container_deletes_its_backups(
    writer: Tenant, deps: Deps, docker_client: docker.DockerClient, store: ArchiveStore
) -> None:
    container_id, backup, key = _backed_up(writer, deps, docker_client)
    assert sum(len(c) for c in store.read(key)) == backup["size_bytes"]
    assert writer.api.tenant("DELETE", f"/containers/{container_id}").status_code == 202
    run_jobs(deps)
    assert deps.repo.backups.of_workload(writer.cluster["id"], container_id) == []
    with pytest.raises(ArchiveMissing):
        list(store.read(key))


def test_kept_backups_outlive_their_container(
    writer: Tenant,
    deps: Deps,
    docker_client: docker.DockerClient,
    store: ArchiveStore,
    worker_context: context.WorkerContext,
) -> None:
    worker_context.settings = dataclasses.replace(worker_context.settings, keep_backups=True)
    container_id, backup, key = _backed_up(writer, deps, docker_client)
    writer.api.tenant("DELETE", f"/containers/{container_id}")
    run_jobs(deps)
    path = f"/containers/{container_id}/backups/{backup['id']}"
    assert writer.api.tenant("GET", path).json["status"] == "ready"
    download = writer.api.tenant("GET", f"{path}/download")
    assert hashlib.sha256(download.content).hexdigest() == backup["checksum"]
    assert error_of(writer.api.tenant("POST", f"{path}/restore")) == (404, "not_found")
    assert writer.api.tenant("DELETE", path).status_code == 204
    assert error_of(writer.api.tenant("GET", path)) == (404, "not_found")
    with pytest.raises(ArchiveMissing):
        list(store.read(key))
