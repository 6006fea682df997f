"""A simulated Docker Engine for many hosts in one process: each host is a port on
127.0.0.1 answering the part of the Engine API that Corral's periodic passes read
(version negotiation, info, image list, container list with label filters, inspect,
one-shot stats), its containers kept as records. Each answer waits `latency_s`; a
failing host (`failing`) answers every call with a 500. For the benchmarks of the
fleet at scale (bench/scale), never for production: the real-dockerd tests keep
driving real engines.

    engine = SimulatedEngine(hosts=1000, latency_s=0.002, failing={7})
    with engine:
        engine.put(3, container)   # host 3 now runs it
        engine.address(3)          # "tcp://127.0.0.1:<port>" for a host record
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

API_VERSION = "1.41"
ZERO_TIME = "0001-01-01T00:00:00Z"
STARTED = "2026-01-01T00:00:00.000000000Z"


@dataclass
class SimulatedContainer:
    id: str
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    running: bool = True

    def summary(self) -> dict[str, Any]:
        return {
            "Id": self.id,
            "Names": [f"/{self.name}"],
            "Labels": dict(self.labels),
            "State": "running" if self.running else "exited",
            "SizeRw": 4096,
        }

    def inspect(self) -> dict[str, Any]:
        return {
            "Id": self.id,
            "Name": f"/{self.name}",
            "Config": {"Labels": dict(self.labels), "Env": []},
            "State": {
                "Status": "running" if self.running else "exited",
                "Running": self.running,
                "Paused": False,
                "StartedAt": STARTED,
            },
            "HostConfig": {},
            "NetworkSettings": {"Ports": {}},
        }


class SimulatedEngine:
    """`hosts` simulated engines, each on a port of its own, served by threads."""

    def __init__(self, hosts: int, *, latency_s: float = 0.0, failing: Iterable[int] = ()) -> None:
        self.latency_s = latency_s
        self.failing = set(failing)
        self.containers: list[dict[str, SimulatedContainer]] = [{} for _ in range(hosts)]
        self.calls = 0
        self._lock = threading.Lock()
        self._servers: list[ThreadingHTTPServer] = []

    def __enter__(self) -> SimulatedEngine:
        for host in range(len(self.containers)):
            server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler(host))
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self._servers.append(server)
        return self

    def __exit__(self, *exc: object) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()

    def address(self, host: int) -> str:
        return f"tcp://127.0.0.1:{self._servers[host].server_address[1]}"

    def put(self, host: int, container: SimulatedContainer) -> None:
        with self._lock:
            self.containers[host][container.id] = container

    def _answer(self, host: int, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        with self._lock:
            self.calls += 1
        if self.latency_s:
            time.sleep(self.latency_s)
        if host in self.failing:
            return 500, {"message": "simulated engine failure"}
        parts = [p for p in path.split("/") if p]
        if parts and parts[0].startswith("v1."):
            parts = parts[1:]
        containers = self.containers[host]
        if parts in (["version"], ["_ping"]):
            return 200, {"ApiVersion": API_VERSION, "Version": "simulated", "Os": "linux"}
        if parts == ["info"]:
            return 200, {"Name": f"simulated-{host}", "Labels": [], "Containers": len(containers)}
        if parts == ["images", "json"]:
            return 200, [{"Id": "sha256:0", "RepoTags": ["corral/busybox:latest"]}]
        if parts == ["containers", "json"]:
            wanted = _label_filter(query)
            found = [
                c.summary()
                for c in containers.values()
                if all(c.labels.get(k) == v for k, v in wanted.items())
            ]
            return 200, found
        if len(parts) == 3 and parts[0] == "containers":
            container = containers.get(parts[1]) or next(
                (c for c in containers.values() if c.name == parts[1]), None
            )
            if container is None:
                return 404, {"message": f"No such container: {parts[1]}"}
            if parts[2] == "json":
                return 200, container.inspect()
            if parts[2] == "stats":
                return 200, _stats()
        return 404, {"message": f"page not found: {path}"}

    def _handler(self, host: int) -> type[BaseHTTPRequestHandler]:
        engine = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                url = urlparse(self.path)
                status, body = engine._answer(host, url.path, parse_qs(url.query))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Api-Version", API_VERSION)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return  # quiet: a benchmark makes many thousands of calls

        return Handler


def _label_filter(query: dict[str, list[str]]) -> dict[str, str]:
    """`filters={"label": ["k=v", ...]}` as the SDK sends it."""
    raw = query.get("filters", ["{}"])[0]
    labels: dict[str, str] = {}
    for entry in json.loads(raw).get("label", []):
        key, _, value = entry.partition("=")
        labels[key] = value
    return labels


def _stats() -> dict[str, Any]:
    return {
        "read": "2026-01-01T00:00:01.000000000Z",
        "cpu_stats": {"cpu_usage": {"total_usage": 1_000_000}},
        "memory_stats": {"usage": 8 * 1024 * 1024, "stats": {"inactive_file": 1024 * 1024}},
    }
