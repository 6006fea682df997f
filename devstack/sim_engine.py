"""A simulated Docker Engine for many hosts in one process: each host is a port on
127.0.0.1 answering the part of the Engine API that Corral uses: what its periodic
passes read (version negotiation, info, image list and inspect, container list with
label filters, inspect, one-shot stats) and what a provision, a power change and a
delete write (volumes, the cluster's network, container create, start, stop, restart,
kill, pause, unpause, wait, remove). Containers, volumes and networks are kept as
records; every image is there (a pull succeeds at once). Each answer waits
`latency_s`; a failing host (`failing`) answers every call with a 500, and any call
fails so with probability `failure_rate`. For the benchmarks of the fleet at scale
(bench/scale), never for production: the real-dockerd tests keep driving real
engines.

All the hosts' ports are served by one thread that waits on all of them at once (and
one short-lived thread per call): a thousand idle hosts cost the process nothing. One
polling `serve_forever` thread per host woke each of them twice a second, and in the
benchmark's own process, where the API under measurement runs, those thousand threads'
wake-ups took the interpreter's lock from it on the large fleet only.

    engine = SimulatedEngine(hosts=1000, latency_s=0.002, failing={7})
    with engine:
        engine.put(3, container)   # host 3 now runs it
        engine.address(3)          # "tcp://127.0.0.1:<port>" for a host record
"""

from __future__ import annotations

import json
import random
import selectors
import socket
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
    paused: bool = False
    image: str = "corral/busybox:latest"
    host_config: dict[str, Any] = field(default_factory=dict)

    @property
    def state(self) -> str:
        return "paused" if self.paused else "running" if self.running else "exited"

    def summary(self) -> dict[str, Any]:
        return {
            "Id": self.id,
            "Names": [f"/{self.name}"],
            "Labels": dict(self.labels),
            "State": self.state,
            "Image": self.image,
            "SizeRw": 4096,
        }

    def inspect(self) -> dict[str, Any]:
        return {
            "Id": self.id,
            "Name": f"/{self.name}",
            "Config": {"Labels": dict(self.labels), "Env": [], "Image": self.image},
            "State": {
                "Status": self.state,
                "Running": self.running,
                "Paused": self.paused,
                "StartedAt": STARTED,
            },
            "HostConfig": dict(self.host_config),
            "NetworkSettings": {"Ports": {}},
        }


class SimulatedEngine:
    """`hosts` simulated engines, each on a port of its own, served by threads."""

    def __init__(
        self,
        hosts: int,
        *,
        latency_s: float = 0.0,
        failing: Iterable[int] = (),
        failure_rate: float = 0.0,
    ) -> None:
        self.latency_s = latency_s
        self.failing = set(failing)
        self.failure_rate = failure_rate
        self.containers: list[dict[str, SimulatedContainer]] = [{} for _ in range(hosts)]
        self.volumes: list[set[str]] = [set() for _ in range(hosts)]
        self.networks: list[dict[str, dict[str, Any]]] = [{} for _ in range(hosts)]
        self.calls = 0
        self._lock = threading.Lock()
        self._servers: list[ThreadingHTTPServer] = []
        self._serving: threading.Thread | None = None
        self._stop_ends: tuple[socket.socket, socket.socket] | None = None

    def __enter__(self) -> SimulatedEngine:
        for host in range(len(self.containers)):
            server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler(host))
            server.daemon_threads = True
            self._servers.append(server)
        self._stop_ends = socket.socketpair()
        self._serving = threading.Thread(
            target=self._serve, args=(self._stop_ends[0],), name="sim-engine", daemon=True
        )
        self._serving.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop_ends is not None:
            self._stop_ends[1].send(b"x")
        if self._serving is not None:
            self._serving.join(timeout=10)
        for server in self._servers:
            server.server_close()
        for end in self._stop_ends or ():
            end.close()
        self._servers.clear()
        self._serving = self._stop_ends = None

    def _serve(self, stop: socket.socket) -> None:
        """Accept on every host's port until `stop` is readable; each call is answered
        in a thread of its own (ThreadingHTTPServer)."""
        with selectors.DefaultSelector() as selector:
            selector.register(stop, selectors.EVENT_READ, None)
            for server in self._servers:
                selector.register(server.socket, selectors.EVENT_READ, server)
            while True:
                for key, _ in selector.select():
                    if key.data is None:
                        return
                    key.data.handle_request()  # readable: accepts at once

    def address(self, host: int) -> str:
        return f"tcp://127.0.0.1:{self._servers[host].server_address[1]}"

    def put(self, host: int, container: SimulatedContainer) -> None:
        with self._lock:
            self.containers[host][container.id] = container

    def _answer(
        self, host: int, method: str, path: str, query: dict[str, list[str]], body: Any
    ) -> tuple[int, Any]:
        with self._lock:
            self.calls += 1
        if self.latency_s:
            time.sleep(self.latency_s)
        if host in self.failing or random.random() < self.failure_rate:
            return 500, {"message": "simulated engine failure"}
        parts = [p for p in path.split("/") if p]
        if parts and parts[0].startswith("v1."):
            parts = parts[1:]
        with self._lock:  # one call at a time per engine process: records stay whole
            if method == "GET":
                return self._read(host, parts, query)
            return self._write(host, method, parts, query, body)

    def _read(self, host: int, parts: list[str], query: dict[str, list[str]]) -> tuple[int, Any]:
        containers = self.containers[host]
        if parts in (["version"], ["_ping"]):
            return 200, {"ApiVersion": API_VERSION, "Version": "simulated", "Os": "linux"}
        if parts == ["info"]:
            return 200, {"Name": f"simulated-{host}", "Labels": [], "Containers": len(containers)}
        if parts == ["images", "json"]:
            return 200, [{"Id": "sha256:0", "RepoTags": ["corral/busybox:latest"]}]
        if len(parts) >= 3 and parts[0] == "images" and parts[-1] == "json":
            return 200, {"Id": "sha256:0", "RepoTags": ["/".join(parts[1:-1])]}
        if parts == ["containers", "json"]:
            wanted = _label_filter(query)
            found = [
                c.summary()
                for c in containers.values()
                if all(c.labels.get(k) == v for k, v in wanted.items())
            ]
            return 200, found
        if len(parts) == 3 and parts[0] == "containers":
            container = self._container(host, parts[1])
            if container is None:
                return 404, {"message": f"No such container: {parts[1]}"}
            if parts[2] == "json":
                return 200, container.inspect()
            if parts[2] == "stats":
                return 200, _stats()
        if len(parts) == 2 and parts[0] == "volumes":
            if parts[1] not in self.volumes[host]:
                return 404, {"message": f"get {parts[1]}: no such volume"}
            return 200, {"Name": parts[1], "Driver": "local"}
        if parts == ["networks"]:
            names = json.loads(query.get("filters", ["{}"])[0]).get("name", [])
            return 200, [n for name, n in self.networks[host].items() if name in names]
        return 404, {"message": f"page not found: /{'/'.join(parts)}"}

    def _write(
        self, host: int, method: str, parts: list[str], query: dict[str, list[str]], body: Any
    ) -> tuple[int, Any]:
        containers = self.containers[host]
        if method == "POST" and parts == ["images", "create"]:
            return 200, {"status": "Already exists"}
        if method == "POST" and parts == ["volumes", "create"]:
            self.volumes[host].add(body["Name"])
            return 201, {"Name": body["Name"], "Driver": body.get("Driver") or "local"}
        if method == "DELETE" and len(parts) == 2 and parts[0] == "volumes":
            if parts[1] not in self.volumes[host]:
                return 404, {"message": f"get {parts[1]}: no such volume"}
            self.volumes[host].discard(parts[1])
            return 204, None
        if method == "POST" and parts == ["networks", "create"]:
            if body["Name"] in self.networks[host]:
                return 409, {"message": f"network with name {body['Name']} already exists"}
            network = {"Id": f"net-{body['Name']}", "Name": body["Name"], "Created": STARTED}
            self.networks[host][body["Name"]] = network
            return 201, {"Id": network["Id"]}
        if method == "DELETE" and len(parts) == 2 and parts[0] == "networks":
            named = [k for k, n in self.networks[host].items() if parts[1] in (k, n["Id"])]
            for name in named:
                del self.networks[host][name]
            return (204, None) if named else (404, {"message": "network not found"})
        if method == "POST" and parts == ["containers", "create"]:
            name = query.get("name", [""])[0]
            if self._container(host, name) is not None:
                return 409, {"message": f'Conflict. The container name "/{name}" is already in use'}
            made = SimulatedContainer(
                id=f"sim{len(containers)}{random.getrandbits(48):012x}",
                name=name,
                labels=dict(body.get("Labels") or {}),
                running=False,
                image=str(body.get("Image", "")),
                host_config=dict(body.get("HostConfig") or {}),
            )
            containers[made.id] = made
            return 201, {"Id": made.id, "Warnings": []}
        if len(parts) >= 2 and parts[0] == "containers":
            container = self._container(host, parts[1])
            if container is None:
                return 404, {"message": f"No such container: {parts[1]}"}
            if method == "DELETE" and len(parts) == 2:
                if container.running and query.get("force", ["0"])[0] in ("0", "false"):
                    return 409, {"message": "You cannot remove a running container"}
                del containers[container.id]
                return 204, None
            if method == "POST" and len(parts) == 3:
                return _power(container, parts[2])
        return 404, {"message": f"page not found: /{'/'.join(parts)}"}

    def _container(self, host: int, name_or_id: str) -> SimulatedContainer | None:
        containers = self.containers[host]
        return containers.get(name_or_id) or next(
            (c for c in containers.values() if c.name == name_or_id), None
        )

    def _handler(self, host: int) -> type[BaseHTTPRequestHandler]:
        engine = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def do_DELETE(self) -> None:
                self._serve("DELETE")

            def _serve(self, method: str) -> None:
                url = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else {}
                status, answer = engine._answer(host, method, url.path, parse_qs(url.query), body)
                data = b"" if answer is None else json.dumps(answer).encode()
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


def _power(container: SimulatedContainer, action: str) -> tuple[int, Any]:
    """A power call on `container`: the state it leaves, as the engine answers it."""
    if action == "wait":
        return 200, {"StatusCode": 0}
    if action in ("start", "restart"):
        container.running, container.paused = True, False
    elif action in ("stop", "kill"):
        container.running, container.paused = False, False
    elif action == "pause":
        if not container.running:
            return 409, {"message": f"Container {container.id} is not running"}
        container.paused = True
    elif action == "unpause":
        if not container.paused:
            return 500, {"message": f"Container {container.id} is not paused"}
        container.paused = False
    else:
        return 404, {"message": f"page not found: {action}"}
    return 204, None


def _stats() -> dict[str, Any]:
    return {
        "read": "2026-01-01T00:00:01.000000000Z",
        "cpu_stats": {"cpu_usage": {"total_usage": 1_000_000}},
        "memory_stats": {"usage": 8 * 1024 * 1024, "stats": {"inactive_file": 1024 * 1024}},
    }
