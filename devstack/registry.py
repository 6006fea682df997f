"""A local OCI registry (Debian's `docker-registry`, the distribution project's) for the
tests and `make run`: images are pushed to it from a private dockerd and pulled back by
Corral's hosts, since Docker Hub is out of reach here.

`start_registry(..., users={...})` puts it behind htpasswd (bcrypt) authentication.
Several registries may share one storage folder: push once through an open one, and
pull the same image through one that asks for credentials.
"""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import bcrypt

from devstack.processes import Child, StartupError, free_port

STOP_TIMEOUT_S = 10.0


def find_registry() -> str | None:
    return shutil.which("docker-registry") or shutil.which(
        "docker-registry", path="/usr/bin:/usr/sbin"
    )


@dataclass(frozen=True)
class Registry:
    """A running registry: `address` (host:port) is what image references start with."""

    child: Child
    address: str
    storage: Path

    def stop(self) -> None:
        self.child.stop()


def start_registry(
    workdir: Path,
    *,
    host: str = "127.0.0.1",
    storage: Path | None = None,
    users: dict[str, str] | None = None,
) -> Registry:
    """Start a registry on `host` and a free port, storing in `storage` (default
    `workdir`/storage); with `users` (name: password) it asks for credentials.
    StartupError when it is not installed or does not answer."""
    binary = find_registry()
    if binary is None:
        raise StartupError("docker-registry is not installed (Debian package docker-registry)")
    workdir.mkdir(parents=True, exist_ok=True)
    storage = storage or workdir / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    address = f"{host}:{free_port()}"
    config = [
        "version: 0.1",
        "log:",
        "  level: warn",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {storage}",
        "  delete:",
        "    enabled: true",
        "http:",
        f"  addr: {address}",
    ]
    if users:
        htpasswd = workdir / "htpasswd"
        htpasswd.write_text("".join(f"{name}:{_bcrypt(pw)}\n" for name, pw in users.items()))
        config += ["auth:", "  htpasswd:", "    realm: corral", f"    path: {htpasswd}"]
    config_path = workdir / "config.yml"
    config_path.write_text("\n".join(config) + "\n")
    child = Child(
        "docker-registry",
        [binary, "serve", str(config_path)],
        {"PATH": "/usr/bin:/bin"},
        workdir / "registry.log",
        stop_timeout=STOP_TIMEOUT_S,
    )
    registry = Registry(child, address, storage)
    try:
        child.wait_until(lambda: _answers(address), f"the registry to answer on {address}")
    except BaseException:
        child.stop()
        raise
    return registry


def _bcrypt(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()


def _answers(address: str) -> bool:
    """GET /v2/ answers 200 (open) or 401 (credentials asked): the registry is up."""
    try:
        with urllib.request.urlopen(f"http://{address}/v2/", timeout=2) as response:
            return bool(response.status == 200)
    except urllib.error.HTTPError as exc:
        return exc.code == 401
    except (urllib.error.URLError, OSError):
        return False
