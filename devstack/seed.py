"""Seeding a fresh local Corral through its own operator API: two demo eggs (an idle
busybox shell, and `http`, a web server of its data folder on its allocated port),
this machine's docker host, a demo cluster allowed both, and one API key for it
(`seed`); then, when `make run` has a VM host, that host, a demo qemu egg and the
cluster allowed it too (`seed_vm_host`)."""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.databases import DatabaseServer
from devstack.guest_images import INITRD_NAME, KERNEL_NAME
from devstack.image import BUSYBOX_REPOSITORY, BUSYBOX_TAG, IDLE_COMMAND
from devstack.vmhost import ACCEL, DEMO_IMAGE, PORT_RANGE, VmHost

ADMIN = "/api/v1"
PUBLIC = "/api/public/clusters/v1"
MIB = 1024 * 1024

# Room for the reference documents' own examples, verbatim, with the rest of the plan
# to spare: POST /containers with 1 core, 1024 MB, 5120 MB of storage, 100 io and
# 1 port, then its PATCH to 2 cores and 2048 MB; and 003's environment of one VM
# with 2 vCPUs, 2048 MiB, a 40960 MiB disk and port 80 (a qcow2 disk takes what the
# guest writes, not its size).
DEMO_PLAN: dict[str, Any] = {
    "name": "demo",
    "cpu_cores": 4.0,
    "ram_mb": 4096,
    "storage_mb": 65536,
    "io": 1000,
    "ports": 10,
    "databases": 5,
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
    http_egg_id: str | None = None  # the demo egg that serves HTTP on its allocation


@dataclass(frozen=True)
class VmDemo:
    """What `seed_vm_host` made: the VM host's record and the demo qemu egg."""

    egg_id: str
    host_id: str
    image: str


class ApiClient:
    """JSON over HTTP with a bearer key, on the standard library."""

    def __init__(self, base_url: str, key: str) -> None:
        self._base_url = base_url
        self._key = key

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.call("POST", path, body)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        request = urllib.request.Request(
            self._base_url + path,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
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
            raise ApiError(f"{method} {path} answered {exc.code}: {detail}") from exc


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


def seed(
    api: ApiClient,
    docker_url: str | None,
    storage_dir: Path,
    public_address: str | None = None,
) -> Demo:
    """Create the demo eggs, host (only with a docker engine; its published ports
    answer at `public_address`), cluster and key."""
    egg = api.post(f"{ADMIN}/eggs", demo_egg())
    web = api.post(f"{ADMIN}/eggs", http_egg())
    host_id = None
    if docker_url is not None:
        host = api.post(
            f"{ADMIN}/hosts",
            {
                "name": "local",
                "driver": "docker",
                "address": docker_url,
                "capacity": demo_host_capacity(storage_dir),
                # 002's example region, so that its `POST /api/instances` works verbatim
                "labels": {"origin": "make-run", "region": "us-east-1"},
                **({"public_address": public_address} if public_address else {}),
            },
        )
        host_id = host["id"]
    cluster = api.post(
        f"{ADMIN}/clusters",
        {
            "name": "demo",
            "plan": DEMO_PLAN,
            "egg_ids": [egg["id"], web["id"]],
            "type": "local",
            "description": "The demo cluster of make run.",
            # 002's instances name no egg: they get this one
            "config": {"default_egg_id": egg["id"]},
        },
    )
    # 003's environments name no cluster: they go to this one
    api.call("PATCH", f"{ADMIN}/platform/settings", {"default_cluster_id": cluster["id"]})
    key = api.post(f"{ADMIN}/clusters/{cluster['id']}/keys", {"name": "demo"})
    return Demo(
        egg_id=egg["id"],
        cluster_id=cluster["id"],
        api_key=key["secret"],
        host_id=host_id,
        http_egg_id=web["id"],
    )


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


def register_database_host(api: ApiClient, server: DatabaseServer) -> str:
    """Register the local PostgreSQL as a database host serving every cluster."""
    return str(api.post(f"{ADMIN}/database-hosts", server.host_body("local-postgres"))["id"])


# Serves its data folder over HTTP on its primary allocation ($SERVER_PORT), with a page
# of its own when the folder has none; exits at once on SIGTERM (httpd as PID 1 would not).
HTTP_COMMAND: tuple[str, ...] = (
    "/bin/sh",
    "-c",
    'mkdir -p /data && [ -e /data/index.html ] || echo "<h1>Hello from Corral</h1>'
    '<p>Container $HOSTNAME serves /data on port $SERVER_PORT.</p>" > /data/index.html; '
    '/bin/busybox httpd -f -p "$SERVER_PORT" -h /data & '
    "trap 'kill $! 2>/dev/null; exit 0' TERM; wait $!",
)


def http_egg() -> dict[str, Any]:
    return {
        "name": "http",
        "description": "busybox httpd serving the container's /data on its allocated port.",
        "engine": "docker",
        "image": f"{BUSYBOX_REPOSITORY}:{BUSYBOX_TAG}",
        "command": list(HTTP_COMMAND),
        "minimum": {"cpu_cores": 0.1, "ram_mb": 16, "ports": 1},
        "defaults": {"cpu_cores": 0.25, "ram_mb": 32, "storage_mb": 64, "ports": 1},
        "stop_timeout": 5,
    }


# -- the VM host -----------------------------------------------------------------------

# The demo guest (devstack/guest_images.py) greets on each of these guest ports.
DEMO_GUEST_PORTS = (22, 80, 443, 8080)


def seed_vm_host(api: ApiClient, demo: Demo, vm_host: VmHost, storage_dir: Path) -> VmDemo:
    """Register `vm_host` with its pinned host key, create the demo qemu egg, and allow
    it in the demo cluster beside the docker egg."""
    egg = api.post(f"{ADMIN}/eggs", demo_vm_egg())
    host = api.post(
        f"{ADMIN}/hosts",
        {
            "name": "local-vm",
            "driver": "ssh",
            "address": vm_host.ssh_address,
            "engines": ["qemu"],
            "capacity": demo_host_capacity(storage_dir),
            "labels": {
                "origin": "make-run",
                "corral.base_dir": str(vm_host.base_dir),
                "corral.images_dir": str(vm_host.images_dir),
                "corral.accel": ACCEL,
            },
            "ssh_host_key": vm_host.sshd.host_key,
            "ssh_private_key": vm_host.sshd.client_key_pem,
            "port_range": list(PORT_RANGE),
        },
    )
    docker_eggs = [demo.egg_id, *([demo.http_egg_id] if demo.http_egg_id else [])]
    api.call("PATCH", f"{ADMIN}/clusters/{demo.cluster_id}", {"egg_ids": [*docker_eggs, egg["id"]]})
    return VmDemo(egg_id=egg["id"], host_id=host["id"], image=DEMO_IMAGE)


def demo_vm_egg() -> dict[str, Any]:
    listen = ",".join(str(port) for port in DEMO_GUEST_PORTS)
    return {
        "name": "busybox-vm",
        "description": (
            "A busybox initramfs under QEMU that greets on guest ports "
            f"{listen} (no sshd: port 22 answers the greeting too)."
        ),
        "engine": "qemu",
        "image": DEMO_IMAGE,
        "minimum": {"cpu_cores": 1, "ram_mb": 64, "storage_mb": 32},
        "defaults": {"cpu_cores": 1, "ram_mb": 128, "storage_mb": 64},
        "stop_timeout": 20,
        "vm": {
            "kernel": KERNEL_NAME,
            "initrd": INITRD_NAME,
            "kernel_args": f"console=ttyS0 quiet corral_listen={listen}",
        },
    }


def wait_for_image(api: ApiClient, vm: VmDemo, timeout: float) -> bool:
    """Whether the health check (run by rq cron) recorded the demo image on the VM host
    within `timeout` seconds: VMs are placed only where their image was seen."""
    deadline = time.monotonic() + timeout
    while True:
        hosts = api.call("GET", f"{ADMIN}/images")["hosts"]
        if any(h["id"] == vm.host_id and vm.image in h["images"] for h in hosts):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)
