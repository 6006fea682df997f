"""One Corral worker process running several jobs at once against the real dockerd:
jobs for different workloads run side by side, two jobs for one workload never do,
and a worker killed with jobs in flight leaves what the next one converges."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import docker
import pytest
import redis as redis_lib

from devstack.dockerd import Dockerd
from services.deps import Deps
from shared.settings import Settings
from tests.fixtures.corral import Tenant, create_running
from workers import locks

pytestmark = pytest.mark.integration


def _worker(
    settings: Settings, log: Path, concurrency: int, *, burst: bool
) -> subprocess.Popen[bytes]:
    assert settings.dynamodb_endpoint is not None  # the fixtures' table server
    env = os.environ | {
        "CORRAL_TABLE": settings.table_name,
        "CORRAL_DYNAMODB_ENDPOINT": settings.dynamodb_endpoint,
        "CORRAL_REDIS_URL": settings.redis_url,
        "CORRAL_WORKER_CONCURRENCY": str(concurrency),
    }
    command = [
        sys.executable, "-m", "rq.cli", "worker", *(["--burst"] if burst else []),
        "--worker-class", "workers.worker.CorralWorker",
        "--serializer", "rq.serializers.JSONSerializer",
        "-u", settings.redis_url, settings.queue_name,
    ]  # fmt: skip
    with log.open("ab") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


@contextmanager
def _frozen(dockerd: Dockerd) -> Iterator[None]:
    """The engine stopped: every job that reaches it hangs there until the block ends."""
    os.kill(dockerd.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(dockerd.pid, signal.SIGCONT)


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")


def _status(live: Tenant, path: str) -> str:
    status: str = live.api.tenant("GET", path).json["status"]
    return status


def _labelled(docker_client: docker.DockerClient, workload_id: str) -> list[Any]:
    return docker_client.containers.list(
        all=True, filters={"label": f"io.corral.workload={workload_id}"}
    )


def test_one_worker_runs_jobs_of_different_workloads_at_once_and_a_kill_converges(
    live: Tenant,
    deps: Deps,
    settings: Settings,
    docker_client: docker.DockerClient,
    dockerd: Dockerd,
    tmp_path: Path,
) -> None:
    """Three provisions are running at once in one worker process (the engine frozen
    holds each inside its job); SIGKILLed there, the worker leaves them running; the
    reconciler's requeue and a new worker finish them: one container each, exact
    counters."""
    created = [live.create(name=f"side-{index}", ram_mb=64).json for index in range(3)]
    ops = [body["operation"]["id"] for body in created]
    log = tmp_path / "worker.log"
    with _frozen(dockerd):
        worker = _worker(settings, log, concurrency=3, burst=False)
        try:
            _wait(
                lambda: all(_status(live, f"/operations/{op}") == "running" for op in ops),
                "three operations running at once in one worker",
            )
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)
    assert all(_status(live, f"/operations/{op}") == "running" for op in ops)

    for op_id in ops:  # as the reconciler does for a dead worker's operations
        assert deps.jobs.requeue_operation(deps.repo.operations.get(live.cluster["id"], op_id))
    done = _worker(settings, log, concurrency=3, burst=True)
    assert done.wait(timeout=120) == 0, log.read_text()[-3000:]
    for body, op_id in zip(created, ops, strict=True):
        workload_id = body["container"]["id"]
        assert _status(live, f"/operations/{op_id}") == "succeeded", log.read_text()[-3000:]
        assert _status(live, f"/containers/{workload_id}") == "running"
        matching = _labelled(docker_client, workload_id)
        assert len(matching) == 1 and matching[0].status == "running"
    used = live.api.tenant("GET", "/capacity").json["used"]
    assert used["ram_mb"] == 3 * 64 and used["containers"] == 3


def test_a_second_job_for_the_same_workload_waits_for_the_first(
    live: Tenant,
    deps: Deps,
    settings: Settings,
    docker_client: docker.DockerClient,
    dockerd: Dockerd,
    tmp_path: Path,
) -> None:
    """A stop hangs on the frozen engine when the reconciler, believing its worker dead,
    queues it again: the worker has a free thread and takes the second job, which waits
    for the workload's lock instead of reaching the engine beside the first."""
    body = create_running(live, deps, name="one-at-a-time", ram_mb=64)
    workload_id = body["id"]
    stopping = live.api.tenant("POST", f"/containers/{workload_id}/power", {"signal": "stop"})
    op_id = stopping.json["operation"]["id"]
    log = tmp_path / "worker.log"
    worker = _worker(settings, log, concurrency=2, burst=False)
    try:
        with _frozen(dockerd):
            _wait(lambda: _status(live, f"/operations/{op_id}") == "running", "the stop running")
            holder = deps.redis.get(locks.lock_key(workload_id))
            assert holder is not None and op_id in holder.decode()
            op = deps.repo.operations.get(live.cluster["id"], op_id)
            assert deps.jobs.requeue_operation(op)
            _wait(lambda: b"waits for workload" in log.read_bytes(), "the second job waiting")
            assert deps.redis.get(locks.lock_key(workload_id)) == holder
        _wait(lambda: _status(live, f"/operations/{op_id}") == "succeeded", "the stop done")
        _wait(lambda: log.read_text().count(f"Job OK ({op_id})") == 2, "both jobs done")
        assert not deps.redis.exists(locks.lock_key(workload_id))
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=60)
    assert code == 0, log.read_text()[-3000:]
    assert _status(live, f"/containers/{workload_id}") == "stopped"
    assert [c.status for c in _labelled(docker_client, workload_id)] == ["exited"]


def test_the_workload_lock_serialises_one_workload_and_not_two(
    redis_conn: redis_lib.Redis[bytes],
) -> None:
    """Four threads on two workloads: the two of one workload never overlap, the two
    workloads do."""
    spans: dict[str, list[tuple[float, float]]] = {"a": [], "b": []}
    barrier = threading.Barrier(4)

    def job(workload: str, index: int) -> None:
        barrier.wait()
        with locks.workload_job(redis_conn, f"lock-{workload}", f"job-{workload}-{index}"):
            started = time.monotonic()
            time.sleep(0.3)
            spans[workload].append((started, time.monotonic()))

    threads = [
        threading.Thread(target=job, args=(workload, index))
        for workload in ("a", "b")
        for index in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    for workload in ("a", "b"):
        first, second = sorted(spans[workload])
        assert first[1] <= second[0], f"workload {workload}'s jobs overlapped: {spans}"
    a_first, b_first = min(spans["a"]), min(spans["b"])
    assert a_first[0] < b_first[1] and b_first[0] < a_first[1], spans
    assert not redis_conn.exists(locks.lock_key("lock-a"), locks.lock_key("lock-b"))


def test_a_lock_left_by_a_dead_process_on_this_machine_is_taken_over(
    redis_conn: redis_lib.Redis[bytes],
) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    key = locks.lock_key("orphaned")
    redis_conn.set(key, f"{locks._HOST}:{gone.pid}:job-x:0", px=int(locks.TTL_S * 1000))
    started = time.monotonic()
    with locks.workload_job(redis_conn, "orphaned", "job-y") as waited:
        assert not waited
        holder = redis_conn.get(key)
        assert holder is not None and b"job-y" in holder
    assert time.monotonic() - started < 2
