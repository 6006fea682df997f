"""Local server processes: each in a session of its own, stopped as a group, waited
on until ready; and the free ports they listen on."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("corral.devstack")
REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 30.0


class StartupError(RuntimeError):
    """A component did not start; the message says why, with the tail of its log."""


class Child:
    """A server process in a session of its own: Ctrl-C in the terminal reaches only
    the launcher (or pytest), which then stops the children in order. Stopping signals
    the whole process group, so forked workers go too."""

    def __init__(
        self,
        name: str,
        command: list[str],
        env: dict[str, str],
        log_path: Path,
        stop_timeout: float = 10.0,
        cwd: Path = REPO,
        append_log: bool = False,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self.stop_timeout = stop_timeout
        self.pid_file: Path | None = None
        # A fresh log each run; a restarted component appends to its predecessor's.
        with log_path.open("ab" if append_log else "wb") as out:
            self.process = subprocess.Popen(
                command,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        shown = log_path.relative_to(REPO) if log_path.is_relative_to(REPO) else log_path
        log.info("started %s (pid %d), log in %s", name, self.process.pid, shown)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_until(
        self, ready: Callable[[], bool], what: str, timeout: float = START_TIMEOUT_S
    ) -> None:
        """Return once `ready()` holds; StartupError if the process exits or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                code = self.process.returncode
                raise StartupError(
                    f"{self.name} exited with {code} while starting:\n{self.log_tail()}"
                )
            if ready():
                return
            time.sleep(0.1)
        raise StartupError(f"waited {timeout:.0f} s for {what}:\n{self.log_tail()}")

    def stop(self) -> None:
        pid = self.process.pid
        self._signal_group(signal.SIGTERM)
        try:
            self.process.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in %.0f s; killing it", self.name, self.stop_timeout)
        self._signal_group(signal.SIGKILL)  # and whatever it forked that is still there
        self.process.wait()
        if self.pid_file is not None:
            self.pid_file.unlink(missing_ok=True)
        log.info("stopped %s (pid %d)", self.name, pid)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def kill_leftovers(self) -> None:
        """After the process exited: SIGKILL what it forked that still runs (an rq
        work horse) and reap it."""
        self._signal_group(signal.SIGKILL)
        self.process.wait()

    def record_pid(self, pid_dir: Path) -> None:
        """Leave `pid_dir`/<name>.pid for a later run to find this process (and its
        group) if the one that started it dies without stopping it."""
        pid_dir.mkdir(parents=True, exist_ok=True)
        self.pid_file = pid_dir / f"{self.log_path.stem}.pid"
        self.pid_file.write_text(f"{self.pid} {_start_time(self.pid)}\n")

    def _signal_group(self, signum: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)


def stop_recorded(pid_dir: Path, timeout: float = 20.0) -> list[str]:
    """Stop the process groups whose pid files (`Child.record_pid`) are in `pid_dir`
    and still name the very process that wrote them (same pid, same start time):
    SIGTERM, then SIGKILL after `timeout`. Returns what was stopped, as "name (pid N)"."""
    found: dict[int, str] = {}
    for pid_file in sorted(pid_dir.glob("*.pid")):
        try:
            pid_text, started = pid_file.read_text().split()
            pid = int(pid_text)
        except (OSError, ValueError):
            pid = 0
        if pid and _start_time(pid) == started:
            found[pid] = f"{pid_file.stem} (pid {pid})"
        pid_file.unlink(missing_ok=True)
    for pid in found:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_start_time(pid) for pid in found):
        time.sleep(0.2)
    for pid in found:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    return list(found.values())


def _start_time(pid: int) -> str:
    """The start time of a live process (clock ticks since boot, field 22 of its stat),
    which tells it from a later process given the same pid; "" when none runs (a
    zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    fields = stat.rsplit(")", 1)[1].split()
    return "" if fields[0] == "Z" else fields[19]


@dataclass(frozen=True)
class Server:
    """A started local server: its process and the URL its clients use."""

    child: Child
    url: str

    def stop(self) -> None:
        self.child.stop()


def start_server(
    name: str,
    command: list[str],
    env: dict[str, str],
    log_path: Path,
    url: str,
    ready: Callable[[], bool],
    cwd: Path = REPO,
    append_log: bool = False,
) -> Server:
    """Start a server process and wait until `ready()`; a server that does not get
    ready is stopped, and StartupError says why."""
    child = Child(name, command, env, log_path, cwd=cwd, append_log=append_log)
    try:
        child.wait_until(ready, f"{name} to answer at {url}")
    except BaseException:
        child.stop()
        raise
    return Server(child, url)


# Where `free_port` draws: below hosts' default port range (20000-29999, what
# containers publish on) and below the kernel's ephemeral range (32768-60999, where
# every outgoing connection takes its source port).
FREE_PORTS = range(10000, 20000)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now, for a server about to
    bind it. Drawn at random from `FREE_PORTS`, not asked of the kernel: a port of the
    ephemeral range, free now, can be taken by some outgoing connection's source port
    before the server binds it (a test saw `make run`'s API port taken so)."""
    for _ in range(200):
        port = random.choice(FREE_PORTS)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free TCP port on 127.0.0.1 in {FREE_PORTS}")


def listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:`port`."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def answers_200(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False
