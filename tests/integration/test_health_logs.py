"""Health, logs and measured load from a real dockerd, through the API and the jobs:
the collector's numbers match what containers do, logs return what they print, and
`follow` streams a line printed after the request began (over real HTTP)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import docker
import pytest
import requests

from devstack.dockerd import Dockerd
from handlers.app import create_app
from handlers.public.observe import parse_since
from services.deps import Deps
from shared.clock import utc_now
from shared.settings import Settings
from tests.fixtures.corral import Api, run_jobs
from tests.fixtures.openapi_check import CheckedClient
from tests.fixtures.priority import serve_priority, while_serving
from workers import context
from workers.collector import collect_health

pytestmark = pytest.mark.integration

IDLE = "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"
COMMANDS = {
    "idle": IDLE,
    "busy": "trap 'exit 0' TERM; yes > /dev/null & wait $!",
    # 40 MiB in a tmpfs counts as the container's memory; 8 MiB in its writable layer
    # is its disk.
    "memory": "dd if=/dev/zero of=/dev/shm/fill bs=1M count=40 2>/dev/null; "
    f"dd if=/dev/zero of=/written bs=1M count=8 2>/dev/null; echo filled; {IDLE}",
    "printer": "for i in 1 2 3; do echo early-$i; done; echo oops >&2; sleep 1.1; "
    f"echo later-1; echo later-2; {IDLE}",
    "waiter": f"echo ready; while [ ! -e /tmp/go ]; do sleep 0.1; done; echo late-line; {IDLE}",
}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(
        settings, logs_timeout_seconds=10.0, logs_poll_seconds=0.2, logs_follow_cap_seconds=20.0
    )


@dataclasses.dataclass
class Fleet:
    api: Api
    deps: Deps
    cluster: dict[str, Any]
    host: dict[str, Any]
    eggs: dict[str, str]

    def run(self, kind: str, **fields: Any) -> str:
        """Create a container of `kind`, run its provisioning; its id."""
        body = {"name": kind, "egg_id": self.eggs[kind], **fields}
        resp = self.api.tenant("POST", "/containers", body)
        assert resp.status_code == 202, resp.text
        run_jobs(self.deps)
        cid = str(resp.json["container"]["id"])
        assert self.api.tenant("GET", f"/containers/{cid}").json["status"] == "running"
        return cid

    def health(self, cid: str) -> dict[str, Any]:
        resp = self.api.tenant("GET", f"/containers/{cid}/health")
        assert resp.status_code == 200, resp.text
        return dict(resp.json)

    def logs(self, cid: str, **params: str) -> dict[str, Any]:
        path = f"/containers/{cid}/logs"
        resp = while_serving(self.deps, lambda: self.api.tenant("GET", path, params=params))
        assert resp.status_code == 200, resp.text
        return dict(resp.json)


@pytest.fixture
def fleet(
    api: Api,
    deps: Deps,
    worker_context: context.WorkerContext,
    dockerd: Dockerd,
    busybox_image: str,
) -> Fleet:
    eggs = {
        kind: api.make_egg(name=kind, command=["/bin/sh", "-c", command])["id"]
        for kind, command in COMMANDS.items()
    }
    host = api.make_host(dockerd.url)
    cluster = api.make_cluster(list(eggs.values()), cpu_cores=4, ram_mb=4096, containers=10)
    api.tenant_key = api.make_key(cluster["id"])
    return Fleet(api, deps, cluster, host, eggs)


@pytest.fixture
def removed_after(docker_client: docker.DockerClient) -> Iterator[list[str]]:
    """Containers to remove when the test ends (a CPU burner must not outlive it)."""
    ids: list[str] = []
    yield ids
    for cid in ids:
        with contextlib.suppress(Exception):
            docker_client.containers.get(f"corral-{cid}").remove(force=True)


def _texts(body: dict[str, Any]) -> list[str]:
    return [line["line"] for line in body["lines"]]


def _wait_for_output(fleet: Fleet, cid: str, text: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in _texts(fleet.logs(cid)):
        assert time.monotonic() < deadline, f"{text!r} never printed"
        time.sleep(0.2)


# -- logs -----------------------------------------------------------------------------


def test_logs_return_what_the_container_printed(fleet: Fleet, removed_after: list[str]) -> None:
    cid = fleet.run("printer")
    removed_after.append(cid)
    _wait_for_output(fleet, cid, "later-2")

    body = fleet.logs(cid)
    assert body["container_id"] == cid and body["truncated"] is False
    stdout = [line["line"] for line in body["lines"] if line["stream"] == "stdout"]
    assert stdout == ["early-1", "early-2", "early-3", "later-1", "later-2"]
    assert next(line for line in body["lines"] if line["stream"] == "stderr")["line"] == "oops"
    times = [line["time"] for line in body["lines"]]
    assert all(t.endswith("Z") and len(t) == len("2024-03-14T10:05:00.123456789Z") for t in times)

    assert _texts(fleet.logs(cid, tail="2")) == ["later-1", "later-2"]
    assert _texts(fleet.logs(cid, tail="1")) == ["later-2"]

    # since: the later lines only, at or after the first one's timestamp (printed > 1 s
    # after the early ones), given as ISO 8601 or as unix seconds
    later = next(line for line in body["lines"] if line["line"] == "later-1")
    assert _texts(fleet.logs(cid, since=later["time"])) == ["later-1", "later-2"]
    seconds = later["time"][:19]  # whole seconds, no zone: UTC
    assert _texts(fleet.logs(cid, since=seconds, tail="1")) == ["later-2"]
    since_ns = parse_since(later["time"])
    assert since_ns is not None
    unix = since_ns / 1e9
    assert _texts(fleet.logs(cid, since=f"{unix - 0.5:.3f}")) == ["later-1", "later-2"]
    assert fleet.logs(cid, since=str(int(time.time()) + 3600))["lines"] == []


class HttpServer:
    """The app on a real HTTP server (wsgiref writes each chunk as it comes), counting
    the responses still being produced."""

    def __init__(self, app: Any) -> None:
        self.in_flight = 0
        self._lock = threading.Lock()

        def counted(environ: Any, start_response: Any) -> Any:
            with self._lock:
                self.in_flight += 1
            try:
                yield from app(environ, start_response)
            finally:
                with self._lock:
                    self.in_flight -= 1

        class Server(ThreadingMixIn, WSGIServer):
            daemon_threads = True

        class Quiet(WSGIRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

        self._server = make_server(
            "127.0.0.1", 0, counted, server_class=Server, handler_class=Quiet
        )
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def test_follow_streams_a_line_printed_after_the_request_began(
    fleet: Fleet, docker_client: docker.DockerClient, removed_after: list[str]
) -> None:
    cid = fleet.run("waiter")
    removed_after.append(cid)
    _wait_for_output(fleet, cid, "ready")
    server = HttpServer(create_app(fleet.deps))
    received: list[str] = []
    opened = threading.Event()
    content_types: list[str] = []

    def follow() -> None:
        with requests.get(
            f"{server.url}/api/public/clusters/v1/containers/{cid}/logs",
            params={"follow": "1", "tail": "10"},
            headers={"Authorization": f"Bearer {fleet.api.tenant_key}"},
            stream=True,
            timeout=30,
        ) as resp:
            content_types.append(resp.headers["content-type"])
            for raw in resp.iter_lines(chunk_size=1):
                line = raw.decode()
                received.append(line)
                opened.set()
                if "late-line" in line:
                    return  # the client leaves; the server stops on its next write

    client = threading.Thread(target=follow, daemon=True)
    started = time.monotonic()
    client.start()
    try:
        serve_priority(fleet.deps, opened.is_set, timeout=20)
        # The stream is open and showed the tail; only now does the container print.
        assert not any("late-line" in line for line in received)
        docker_client.containers.get(f"corral-{cid}").exec_run(["/bin/sh", "-c", ": > /tmp/go"])
        serve_priority(fleet.deps, lambda: not client.is_alive(), timeout=20)
        elapsed = time.monotonic() - started
        # The client left: the server notices on its next write and stops following.
        serve_priority(fleet.deps, lambda: server.in_flight == 0, timeout=10)
    finally:
        server.stop()
    assert elapsed < 10
    assert content_types == ["text/event-stream"]
    events = [json.loads(line[len("data: ") :]) for line in received if line.startswith("data: ")]
    assert [e["line"] for e in events] == ["ready", "late-line"]  # each line once
    assert any(line.startswith("id: ") for line in received)


def test_revoking_the_key_ends_its_follow_within_a_second(
    fleet: Fleet, removed_after: list[str]
) -> None:
    """On the WSGI app (Lambda, a threaded server); the ASGI app ends its log follows
    the same way as its event follows (tests/functional/test_event_follows.py). The
    cap (20 s) is far from the second allowed."""
    cid = fleet.run("idle")
    removed_after.append(cid)
    key = fleet.api.make_key(fleet.cluster["id"], "follower")
    key_id = fleet.api.tenant("GET", "/keys/current", key=key).json["id"]
    server = HttpServer(create_app(fleet.deps))
    received: list[bytes] = []
    ended: list[float] = []

    def follow() -> None:
        with requests.get(
            f"{server.url}/api/public/clusters/v1/containers/{cid}/logs",
            params={"follow": "1"},
            headers={"Authorization": f"Bearer {key}"},
            stream=True,
            timeout=30,
        ) as resp:
            for line in resp.iter_lines(chunk_size=1):
                received.append(line)
        ended.append(time.monotonic())

    client = threading.Thread(target=follow, daemon=True)
    client.start()
    try:
        serve_priority(fleet.deps, lambda: bool(received), timeout=20)
        time.sleep(0.3)  # polling the host now
        revoked_at = time.monotonic()
        path = f"/clusters/{fleet.cluster['id']}/keys/{key_id}"
        assert fleet.api.admin("DELETE", path).status_code == 204
        serve_priority(fleet.deps, lambda: not client.is_alive(), timeout=10)
    finally:
        server.stop()
    assert ended and ended[0] - revoked_at < 1.0, "the follow outlived its key's revocation"
    sent = [line for line in received if line]
    assert sent[-2:] == [b"event: end", b'data: {"reason": "revoked"}'], sent[-3:]


def test_follow_ends_at_its_cap(fleet: Fleet, removed_after: list[str]) -> None:
    cid = fleet.run("idle")
    removed_after.append(cid)
    deps = dataclasses.replace(
        fleet.deps, settings=dataclasses.replace(fleet.deps.settings, logs_follow_cap_seconds=1)
    )
    api = dataclasses.replace(fleet.api, client=CheckedClient(create_app(deps)))
    started = time.monotonic()
    resp = while_serving(
        fleet.deps, lambda: api.tenant("GET", f"/containers/{cid}/logs", params={"follow": "1"})
    )
    assert 1 <= time.monotonic() - started < 5
    assert resp.status_code == 200
    assert resp.text.startswith(": following")
    assert resp.text.endswith('event: end\ndata: {"reason": "cap", "seconds": 1}\n\n')


# -- health ---------------------------------------------------------------------------


def test_collector_measures_cpu_memory_disk_and_uptime(
    fleet: Fleet, worker_context: context.WorkerContext, removed_after: list[str]
) -> None:
    busy = fleet.run("busy", cpu_cores=0.5)
    removed_after.append(busy)
    idle = fleet.run("idle")
    removed_after.append(idle)
    memory = fleet.run("memory", ram_mb=128)
    removed_after.append(memory)
    _wait_for_output(fleet, memory, "filled")

    first = collect_health()
    time.sleep(0.5)
    second = collect_health()
    assert first["measured"] == second["measured"] == 3 and second["unknown"] == {}

    hb, hi, hm = fleet.health(busy), fleet.health(idle), fleet.health(memory)
    for health in (hb, hi, hm):
        assert health["state"] == "running" and health["stale"] is False, health
        assert abs(health["last_heartbeat"] - time.time()) < 30
        assert health["reason"] is None and health["uptime_secs"] >= 0
    # `yes` burns what it gets: at most its quota of half a core (50 %), and above an idle
    # shell even on a machine so loaded that the quota is not reached
    assert 2 <= hb["cpu_percent"] <= 60, hb
    assert hi["cpu_percent"] < 2, hi
    assert hm["memory_mb"] >= 38, hm
    assert hi["memory_mb"] < 10, hi
    assert hm["disk_mb"] >= 7, hm

    # the list and the item carry the same health object
    assert fleet.api.tenant("GET", f"/containers/{busy}").json["health"] == hb
    listed = {c["id"]: c["health"] for c in fleet.api.tenant("GET", "/containers").json}
    assert listed[idle] == hi

    # the host shows its measured load beside its capacity; /stats totals it
    host = fleet.api.admin("GET", f"/hosts/{fleet.host['id']}").json
    load = host["load"]
    assert load["workloads"] == 3 and load["stale"] is False
    assert load["cpu_percent"] == pytest.approx(
        hb["cpu_percent"] + hi["cpu_percent"] + hm["cpu_percent"], abs=0.05
    )
    assert load["memory_mb"] == hb["memory_mb"] + hi["memory_mb"] + hm["memory_mb"]
    assert host["capacity"]["cpu_cores"] == 64
    stats = fleet.api.admin("GET", "/stats").json
    assert stats["load"]["cpu_percent"] == load["cpu_percent"]
    assert stats["load"]["hosts_measured"] == 1


def test_a_stopped_collector_makes_health_stale(
    fleet: Fleet, worker_context: context.WorkerContext
) -> None:
    cid = fleet.run("idle")
    # The collector last ran long ago (its clock says so); nothing ran since.
    long_ago = utc_now() - timedelta(seconds=fleet.deps.settings.health_stale_seconds + 60)
    worker_context.clock = lambda: long_ago
    collect_health()
    health = fleet.health(cid)
    assert health["stale"] is True and health["state"] == "unknown"
    assert health["reason"] == "heartbeat_stale"
    assert health["last_heartbeat"] == int(long_ago.timestamp())
    assert fleet.api.admin("GET", f"/hosts/{fleet.host['id']}").json["load"]["stale"] is True

    # the collector runs again: fresh
    worker_context.clock = utc_now
    collect_health()
    health = fleet.health(cid)
    assert health["stale"] is False and health["state"] == "running"


def test_a_stopped_container_is_measured_as_stopped(fleet: Fleet) -> None:
    cid = fleet.run("idle")
    resp = fleet.api.tenant("POST", f"/containers/{cid}/power", {"signal": "stop"})
    assert resp.status_code == 202, resp.text
    run_jobs(fleet.deps)
    collect_health()
    health = fleet.health(cid)
    assert health["state"] == "stopped" and health["stale"] is False
    assert health["cpu_percent"] == 0 and health["memory_mb"] == 0 and health["uptime_secs"] == 0
