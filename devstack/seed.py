"""Seeding a fresh local Corral through its own operator API: a demo egg, this
machine's docker host, a demo cluster allowed that egg, and one API key for it."""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.image import BUSYBOX_REPOSITORY, BUSYBOX_TAG, IDLE_COMMAND

ADMIN = "/api/v1"
PUBLIC = "/api/public/clusters/v1"
MIB = 1024 * 1024

# Room for the reference document's own examples, verbatim, with the rest of the plan
# to spare: POST /containers with 1 core, 1024 MB, 5120 MB of storage, 100 io and
# 1 port, then its PATCH to 2 cores and 2048 MB.
DEMO_PLAN: dict[str, Any] = {
    "name": "demo",
    "cpu_cores": 4.0,
    "ram_mb": 4096,
    "storage_mb": 20480,
    "io": 1000,
    "ports": 10,
    "containers": 5,
}


class ApiError(RuntimeError):
    """The API refused a bootstrap call; the message carries its error envelope."""


@dataclass(frozen=True)
class Demo:
    egg_id: str
    cluster_id: str
    api_key: str
    host_id: str | None


class ApiClient:
    """JSON over HTTP with a bearer key, on the standard library."""

    def __init__(self, base_url: str, key: str) -> None:
        self._base_url = base_url
        self._key = key

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            self._base_url + path,
            data=json.dumps(body).encode(),
            method="POST",
            headers={
                "Authorization": f"Bearer {self._key}",
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                answer: dict[str, Any] = json.load(response)
                return answer
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise ApiError(f"POST {path} answered {exc.code}: {detail}") from exc


def demo_host_capacity(storage_dir: Path) -> dict[str, Any]:
    """What this machine can give containers (its CPUs, its memory, its free disk), but
    never less than the demo plan: on a small machine (one CPU, a nearly full disk) the
    plan's examples must still place. Limits are caps, not reservations, so the engine
    runs them; storage is only accounted."""
    machine = {
        "cpu_cores": float(len(os.sched_getaffinity(0))),
        "ram_mb": _memory_mb(),
        "storage_mb": shutil.disk_usage(storage_dir).free // MIB,
    }
    return {name: max(value, DEMO_PLAN[name]) for name, value in machine.items()}


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("no MemTotal in /proc/meminfo")


def seed(api: ApiClient, docker_url: str | None, storage_dir: Path) -> Demo:
    """Create the demo egg, host (only with a docker engine), cluster and key."""
    egg = api.post(f"{ADMIN}/eggs", demo_egg())
    host_id = None
    if docker_url is not None:
        host = api.post(
            f"{ADMIN}/hosts",
            {
                "name": "local",
                "driver": "docker",
                "address": docker_url,
                "capacity": demo_host_capacity(storage_dir),
                "labels": {"origin": "make-run"},
            },
        )
        host_id = host["id"]
    cluster = api.post(
        f"{ADMIN}/clusters", {"name": "demo", "plan": DEMO_PLAN, "egg_ids": [egg["id"]]}
    )
    key = api.post(f"{ADMIN}/clusters/{cluster['id']}/keys", {"name": "demo"})
    return Demo(egg_id=egg["id"], cluster_id=cluster["id"], api_key=key["secret"], host_id=host_id)


# The idle shell, saying hello first: a new user's first `logs` shows a line.
DEMO_COMMAND = (*IDLE_COMMAND[:2], f"echo 'hello from a Corral demo container'; {IDLE_COMMAND[2]}")


def demo_egg() -> dict[str, Any]:
    return {
        "name": "busybox",
        "description": "A busybox shell that idles until stopped (imported locally).",
        "engine": "docker",
        "image": f"{BUSYBOX_REPOSITORY}:{BUSYBOX_TAG}",
        "command": list(DEMO_COMMAND),
        "minimum": {"cpu_cores": 0.1, "ram_mb": 16},
        "defaults": {"cpu_cores": 0.5, "ram_mb": 64, "storage_mb": 256},
        "stop_timeout": 5,
    }
