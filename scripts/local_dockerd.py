"""A private dockerd for `make run`, apart from any Docker already on the machine.

Its images and layers live in `.corral/docker/data` (kept between runs, so the busybox
image is imported once); its sockets, exec root and pidfile live in a short directory
`/tmp/corral-<uid>/`, because unix socket paths are limited to 108 bytes and containerd
puts its own a few levels below the exec root. No networking of its own: no bridge,
no iptables rules.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import docker
import docker.errors
import requests

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0
_DOCKER_ERRORS = (docker.errors.DockerException, requests.RequestException)


class DockerdError(RuntimeError):
    """dockerd could not be started; the message says why."""


class LocalDockerd:
    def __init__(self, data_root: Path, log_path: Path) -> None:
        self.data_root = data_root
        self.log_path = log_path
        self.run_dir = Path(f"/tmp/corral-{os.getuid()}")
        self.url = f"unix://{self.run_dir / 'docker.sock'}"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def exec_root(self) -> Path:
        return self.run_dir / "exec"

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def client(self, timeout: int = 30) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.url, timeout=timeout)

    def start(self) -> None:
        """Start dockerd and wait until it answers; DockerdError if it cannot."""
        binary = shutil.which("dockerd") or shutil.which("dockerd", path="/usr/sbin:/sbin")
        if binary is None:
            raise DockerdError("dockerd is not installed (Debian package docker.io)")
        if os.geteuid() != 0:
            raise DockerdError("dockerd needs root")
        self._clear_leftovers()
        self.run_dir.mkdir(mode=0o700, parents=True)
        self.data_root.mkdir(parents=True, exist_ok=True)
        config = self.run_dir / "daemon.json"
        config.write_text("{}\n")  # never read /etc/docker/daemon.json
        command = [
            binary,
            "--config-file", str(config),
            "--data-root", str(self.data_root),
            "--exec-root", str(self.exec_root),
            "--pidfile", str(self.run_dir / "dockerd.pid"),
            "-H", self.url,
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        with self.log_path.open("wb") as log:  # a fresh log each run
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # Ctrl-C reaches the launcher, which stops us in order
            )
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise

    def remove_all_containers(self) -> int:
        """Every container of this private engine is Corral's: remove them all."""
        removed = 0
        with contextlib.suppress(*_DOCKER_ERRORS):
            client = self.client(timeout=15)
            try:
                for container in client.containers.list(all=True, sparse=True):
                    with contextlib.suppress(*_DOCKER_ERRORS):
                        container.remove(force=True, v=True)
                        removed += 1
            finally:
                client.close()
        return removed

    def stop(self) -> None:
        """Remove the containers, stop dockerd (SIGTERM, then SIGKILL) and clean up."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.remove_all_containers()
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT_S)
        self.process = None
        self._kill_strays()
        self._unmount_all()
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def _wait_until_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise DockerdError(f"dockerd exited with {code}:\n{self.log_tail()}")
            if self._answers_ping():
                return
            time.sleep(0.2)
        raise DockerdError(f"dockerd did not answer within {START_TIMEOUT_S:.0f} s")

    def _answers_ping(self) -> bool:
        try:
            client = self.client(timeout=2)
        except _DOCKER_ERRORS:
            return False
        try:
            return bool(client.ping())
        except _DOCKER_ERRORS:
            return False
        finally:
            client.close()

    def _clear_leftovers(self) -> None:
        """After a crash of an earlier run: refuse if its dockerd lives, else clean up."""
        pidfile = self.run_dir / "dockerd.pid"
        if pidfile.exists():
            pid = int(pidfile.read_text().strip() or 0)
            if pid and _is_dockerd(pid):
                raise DockerdError(
                    f"a dockerd (pid {pid}) already runs at {self.url}: "
                    "is another `make run` running?"
                )
        self._kill_strays()
        self._unmount_all()
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def _kill_strays(self) -> None:
        """containerd and shims left behind by a dockerd that died: every process
        whose command line names our exec root, and the processes they started."""
        marker = str(self.exec_root).encode()
        ours: set[int] = set()
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if marker in (entry / "cmdline").read_bytes():
                    ours.add(int(entry.name))
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
        children = {pid for pid, parent in parents.items() if parent in ours}
        for pid in children | ours:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def _unmount_all(self) -> None:
        roots = [str(self.data_root.resolve()), str(self.run_dir)]
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:
            return
        points = [line.split()[4] for line in mountinfo.splitlines()]
        ours = [p for p in points if any(p == r or p.startswith(r + "/") for r in roots)]
        for point in sorted(ours, key=len, reverse=True):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)


def _is_dockerd(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "dockerd"
    except OSError:
        return False
