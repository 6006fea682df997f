"""The processes `make run` starts: each in a session of its own, stopped as a group."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
from pathlib import Path

log = logging.getLogger("corral.run")
REPO = Path(__file__).resolve().parent.parent


class Child:
    """A server process in a session of its own: Ctrl-C in the terminal reaches only
    the launcher, which then stops the children in order. Stopping signals the whole
    process group, so forked workers go too."""

    def __init__(
        self,
        name: str,
        command: list[str],
        env: dict[str, str],
        log_path: Path,
        stop_timeout: float = 10.0,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self.stop_timeout = stop_timeout
        with log_path.open("wb") as out:  # a fresh log each run
            self.process = subprocess.Popen(
                command,
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        shown = log_path.relative_to(REPO) if log_path.is_relative_to(REPO) else log_path
        log.info("started %s (pid %d), log in %s", name, self.process.pid, shown)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        pid = self.process.pid
        self._signal_group(signal.SIGTERM)
        try:
            self.process.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in %.0f s; killing it", self.name, self.stop_timeout)
        self._signal_group(signal.SIGKILL)  # and whatever it forked that is still there
        self.process.wait()
        log.info("stopped %s (pid %d)", self.name, pid)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _signal_group(self, signum: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0
