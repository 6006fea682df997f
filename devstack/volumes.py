"""Storage that enforces sizes, for the dev stack's dockerd: a btrfs file system on a
loop-mounted image file with quota groups, and a Docker volume plugin over it.

dockerd runs with its data root on the btrfs mount and `--storage-driver btrfs`, so
`--storage-opt size=` limits a container's root filesystem (a quota group per
subvolume). A named volume of Docker's `local` driver is a plain folder, which no
quota reaches: the plugin here (Docker's volume plugin protocol, JSON over HTTP on a
unix socket in /run/docker/plugins) makes each volume a btrfs subvolume of its own,
limited by its `size` option. dockerd advertises the plugin's name in its daemon label
`io.corral.volume-driver`, where Corral's Docker driver finds it.

A production host does the same with any volume plugin that takes a `size` option;
without one, Corral accounts for storage_mb and says so (`enforcement`).
"""

from __future__ import annotations

import json
import re
import socketserver
import subprocess
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from devstack.processes import StartupError

# Where dockerd looks for plugin sockets. Every dockerd on a machine scans it, and keeps
# retrying (with backoff, for each lookup of a volume it does not know) any plugin it saw
# there that has gone since: so each private dockerd gets a directory of its own mounted
# over this path in a mount namespace of its own (devstack/dockerd.py), and its plugin's
# socket lives in that directory.
PLUGIN_DIR = Path("/run/docker/plugins")
# Corral's Docker driver reads this daemon label (infra.drivers.docker.driver, which the
# dev stack must not import for one constant: it is the documented name).
VOLUME_DRIVER_LABEL = "io.corral.volume-driver"
DEFAULT_SIZE_MB = 20 * 1024
_VOLUME_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_SIZE = re.compile(r"([1-9][0-9]{0,8})([MG])")


def _run(*command: str) -> str:
    """Run a storage tool (arguments as a list, never through a shell); StartupError
    with its own words when it fails."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StartupError(f"{command[0]} failed: {exc}") from exc
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip()
        raise StartupError(f"{' '.join(command)} failed ({done.returncode}): {said}")
    return done.stdout


class BtrfsRoot:
    """A btrfs file system in `image` (sparse, `size_mb`), loop-mounted at `mountpoint`
    with quota groups on. An existing image is mounted again, not remade."""

    def __init__(self, image: Path, mountpoint: Path, size_mb: int) -> None:
        self.image = image
        self.mountpoint = mountpoint
        self.size_mb = size_mb

    def mount(self) -> None:
        if not self.image.exists():
            self.image.parent.mkdir(parents=True, exist_ok=True)
            with self.image.open("wb") as sparse:
                sparse.truncate(self.size_mb * 1024 * 1024)
            _run("mkfs.btrfs", "-q", str(self.image))
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        if not self.is_mounted():
            try:
                _run("mount", "-o", "loop", str(self.image), str(self.mountpoint))
            except StartupError as exc:
                raise StartupError(
                    f"cannot loop-mount the btrfs image for dockerd's data root ({exc}): "
                    "storage_mb enforcement needs loop devices and btrfs in the kernel"
                ) from exc
        _run("btrfs", "quota", "enable", str(self.mountpoint))

    def is_mounted(self) -> bool:
        target = str(self.mountpoint.resolve())
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
        return any(line.split()[4] == target for line in mounts)

    def unmount(self, *, remove_image: bool) -> None:
        if self.is_mounted():
            subprocess.run(["umount", "-l", str(self.mountpoint)], check=False, capture_output=True)
        if remove_image:
            self.image.unlink(missing_ok=True)


class VolumePlugin:
    """Docker's volume plugin protocol over a unix socket: volumes are btrfs subvolumes
    under `root`, limited to their `size` option (`512M`, `2G`) by a quota group."""

    def __init__(self, name: str, root: Path, plugin_dir: Path) -> None:
        self.name = name
        self.root = root
        self.plugin_dir = plugin_dir
        self.socket = plugin_dir / f"{name}.sock"
        self._server: socketserver.ThreadingUnixStreamServer | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.plugin_dir.mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)
        plugin = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw or b"{}") or {}
                    answer = plugin.handle(self.path.lstrip("/"), body)
                except (ValueError, StartupError, OSError) as exc:
                    answer = {"Err": str(exc)}
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/vnd.docker.plugins.v1+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def address_string(self) -> str:
                return "dockerd"

            def log_message(self, format: str, *args: Any) -> None:
                return

        server = socketserver.ThreadingUnixStreamServer(str(self.socket), Handler)
        server.daemon_threads = True
        self._server = server
        threading.Thread(
            target=server.serve_forever, name=f"plugin-{self.name}", daemon=True
        ).start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        self.socket.unlink(missing_ok=True)

    # -- the protocol ------------------------------------------------------------------

    def handle(self, call: str, body: dict[str, Any]) -> dict[str, Any]:
        if call == "Plugin.Activate":
            return {"Implements": ["VolumeDriver"]}
        if call == "VolumeDriver.Capabilities":
            return {"Capabilities": {"Scope": "local"}}
        if call == "VolumeDriver.List":
            return {"Volumes": [self._volume(p.name) for p in sorted(self.root.iterdir())]}
        path = self._path(str(body.get("Name", "")))
        with self._lock:
            if call == "VolumeDriver.Create":
                self._create(path, dict(body.get("Opts") or {}))
                return {"Err": ""}
            if call == "VolumeDriver.Remove":
                if path.exists():
                    _run("btrfs", "subvolume", "delete", str(path))
                return {"Err": ""}
        if not path.exists():
            return {"Err": f"no volume {path.name}"}
        if call == "VolumeDriver.Get":
            return {"Volume": self._volume(path.name), "Err": ""}
        if call in ("VolumeDriver.Mount", "VolumeDriver.Path"):
            return {"Mountpoint": str(path), "Err": ""}
        if call == "VolumeDriver.Unmount":
            return {"Err": ""}
        return {"Err": f"{call} is not supported"}

    def _path(self, name: str) -> Path:
        if not _VOLUME_NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not a volume name")
        return self.root / name

    def _volume(self, name: str) -> dict[str, str]:
        return {"Name": name, "Mountpoint": str(self.root / name)}

    def _create(self, path: Path, options: dict[str, str]) -> None:
        unknown = set(options) - {"size"}
        if unknown:
            raise ValueError(f"unknown options: {', '.join(sorted(unknown))}")
        size = options.get("size")
        if size is not None and not _SIZE.fullmatch(size):
            raise ValueError(f"size {size!r} is not like 512M or 2G")
        if not path.exists():
            _run("btrfs", "subvolume", "create", str(path))
        if size is not None:
            _run("btrfs", "qgroup", "limit", size, str(path))


class EnforcedStorage:
    """A dockerd's storage that enforces sizes: its data root on a btrfs image, and the
    volume plugin over it. `dockerd_args` are what dockerd then runs with."""

    def __init__(
        self, workdir: Path, data_root: Path, plugin_name: str, plugin_dir: Path, size_mb: int
    ) -> None:
        self.root = BtrfsRoot(workdir / "storage.btrfs", data_root, size_mb)
        self.plugin = VolumePlugin(plugin_name, data_root / "corral-volumes", plugin_dir)

    def start(self) -> None:
        self.root.mount()
        try:
            self.plugin.start()
        except OSError as exc:
            self.root.unmount(remove_image=False)
            raise StartupError(f"cannot start the volume plugin {self.plugin.name}: {exc}") from exc

    def dockerd_args(self) -> list[str]:
        return [
            "--storage-driver", "btrfs",
            "--label", f"{VOLUME_DRIVER_LABEL}={self.plugin.name}",
        ]  # fmt: skip

    def stop(self, *, keep_data: bool) -> None:
        self.plugin.stop()
        self.root.unmount(remove_image=not keep_data)
