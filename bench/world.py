"""A Corral to measure: an operator key minted into the table, then through the
operator API an egg (the busybox idle shell), a docker host record for the bench's
dockerd, a cluster with a plan and one tenant key. Works over HTTP (gunicorn) or
in-process (falcon's TestClient), through the same small `Api` interface."""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Protocol

import falcon.testing

from devstack.image import IDLE_COMMAND
from infra.table.repository import Repository
from services.keys import mint_key
from shared.clock import new_id, utc_now

ADMIN = "/api/v1"
PUBLIC = "/api/public/clusters/v1"

# Capacity that never runs out in a benchmark: the API's upper bounds.
BIG_PLAN = {
    "name": "bench",
    "cpu_cores": 1024,
    "ram_mb": 16 * 1024 * 1024,
    "storage_mb": 1024 * 1024 * 1024,
    "io": 1_000_000,
    "ports": 1000,
    "databases": 0,
    "backups": 0,
    "containers": 100_000,
}
BIG_HOST = {"cpu_cores": 1024, "ram_mb": 16 * 1024 * 1024, "storage_mb": 1024 * 1024 * 1024}
# What each benchmark container gets; the raw docker baselines use the same limits.
CPU_CORES = 0.5
RAM_MB = 64
STOP_TIMEOUT = 5
EGG = {
    "name": "busybox",
    "engine": "docker",
    "image": "corral/busybox:latest",
    "command": list(IDLE_COMMAND),
    "minimum": {"cpu_cores": 0.1, "ram_mb": 16, "storage_mb": 0},
    # No disk size and no IO weight: the local dockerd enforces neither, so the
    # driver would try and fall back, and the raw baseline could not match it.
    "defaults": {"cpu_cores": CPU_CORES, "ram_mb": RAM_MB, "storage_mb": 0, "io": 0},
    "stop_timeout": STOP_TIMEOUT,
}


class ApiError(RuntimeError):
    """A call the benchmark depends on did not answer as expected."""


class Api(Protocol):
    def call(
        self, method: str, path: str, key: str | None = None, body: Any = None
    ) -> tuple[int, Any]: ...


class HttpApi:
    """JSON over one keep-alive HTTP connection (loopback), on the standard library."""

    def __init__(self, url: str, timeout: float = 60.0) -> None:
        parsed = urllib.parse.urlsplit(url)
        self._host, self._port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self._timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def call(
        self, method: str, path: str, key: str | None = None, body: Any = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in range(2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self._host, self._port, self._timeout)
            try:
                self._conn.request(method, path, body=data, headers=headers)
                response = self._conn.getresponse()
                raw = response.read()
            except (ConnectionError, http.client.HTTPException):
                self.close()  # the server closed a kept-alive connection: open another
                if attempt:
                    raise
                continue
            return response.status, json.loads(raw) if raw else None
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class InProcessApi:
    """The Falcon app called in this process (no HTTP, no gunicorn)."""

    def __init__(self, app: falcon.App[falcon.Request, falcon.Response]) -> None:
        self._client = falcon.testing.TestClient(app)

    def call(
        self, method: str, path: str, key: str | None = None, body: Any = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        kwargs: dict[str, Any] = {"json": body} if body is not None else {}
        result = self._client.simulate_request(method, path, headers=headers, **kwargs)
        return result.status_code, result.json if result.content else None


def expect(api: Api, method: str, path: str, key: str | None, body: Any, status: int) -> Any:
    code, answer = api.call(method, path, key, body)
    if code != status:
        raise ApiError(f"{method} {path} answered {code}, not {status}: {answer}")
    return answer


@dataclass(frozen=True)
class World:
    api: Api
    operator_key: str
    tenant_key: str
    egg_id: str
    host_id: str
    cluster_id: str

    def tenant(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        return expect(self.api, method, PUBLIC + path, self.tenant_key, body, status)

    def create(self, name: str) -> tuple[str, str]:
        """POST /containers; returns (container id, operation id)."""
        answer = self.tenant(
            "POST", "/containers", {"name": name, "egg_id": self.egg_id}, status=202
        )
        return answer["container"]["id"], answer["operation"]["id"]

    def power(self, container_id: str, signal: str) -> str:
        answer = self.tenant(
            "POST", f"/containers/{container_id}/power", {"signal": signal}, status=202
        )
        return str(answer["operation"]["id"])

    def wait(self, operation_id: str, timeout: float = 120.0) -> dict[str, Any]:
        """Long-poll the operation until it finishes; ApiError unless it succeeded."""
        deadline = time.monotonic() + timeout
        while True:
            op = self.tenant("GET", f"/operations/{operation_id}/wait?timeout=25")
            if op["status"] == "succeeded":
                return dict(op)
            if op["status"] == "failed":
                raise ApiError(f"operation {operation_id} failed: {op.get('error')}")
            if time.monotonic() > deadline:
                raise ApiError(f"operation {operation_id} still {op['status']} after {timeout} s")


def seed(api: Api, repo: Repository, docker_url: str) -> World:
    """Operator key (minted into the table), egg, host, cluster and tenant key."""
    _, operator_key = mint_key(repo, None, "bench-operator", utc_now(), new_id)
    egg = expect(api, "POST", f"{ADMIN}/eggs", operator_key, EGG, 201)
    host = expect(
        api,
        "POST",
        f"{ADMIN}/hosts",
        operator_key,
        {"name": "bench", "driver": "docker", "address": docker_url, "capacity": BIG_HOST},
        201,
    )
    cluster = expect(
        api,
        "POST",
        f"{ADMIN}/clusters",
        operator_key,
        {"name": "bench", "plan": BIG_PLAN, "egg_ids": [egg["id"]]},
        201,
    )
    key = expect(
        api, "POST", f"{ADMIN}/clusters/{cluster['id']}/keys", operator_key, {"name": "b"}, 201
    )
    return World(
        api=api,
        operator_key=operator_key,
        tenant_key=key["secret"],
        egg_id=egg["id"],
        host_id=host["id"],
        cluster_id=cluster["id"],
    )
