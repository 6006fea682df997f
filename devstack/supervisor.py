"""What `make run` keeps running: Corral's own processes (the API, the workers, rq
cron), each started again when it exits, with a growing delay while it keeps dying."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from devstack.processes import Child, StartupError

FIRST_DELAY_S = 1.0
MAX_DELAY_S = 30.0
STEADY_S = 60.0  # a component that ran this long starts again after FIRST_DELAY_S

log = logging.getLogger("corral.run")

# Starts the component's process; True when it is a restart (its log is appended to).
Start = Callable[[bool], Child]


class Component:
    """One supervised process. `check()` (the launcher calls it every second or so)
    notices an exit, logs it with the tail of the log, and starts the process again
    after 1 s, 2 s, 4 s ... up to 30 s while it keeps dying within a minute."""

    def __init__(self, name: str, start: Start, pid_dir: Path) -> None:
        self.name = name
        self.restarts = 0
        self._start = start
        self._pid_dir = pid_dir
        self._quick_exits = 0
        self._restart_at: float | None = None
        self.child = start(False)
        self._started_at = time.monotonic()
        self.child.record_pid(pid_dir)

    def check(self) -> None:
        now = time.monotonic()
        if self._restart_at is None:
            if not self.child.alive():
                self._on_exit(now)
        elif now >= self._restart_at:
            self._restart(now)

    def stop(self) -> None:
        self.child.stop()

    def _on_exit(self, now: float) -> None:
        code = self.child.process.returncode
        self.child.kill_leftovers()
        ran = now - self._started_at
        delay = self._schedule_restart(now)
        log.error(
            "%s (pid %d) exited with %s after %.0f s; starting it again in %.0f s:\n%s",
            self.name, self.child.pid, code, ran, delay, self.child.log_tail(),
        )  # fmt: skip

    def _schedule_restart(self, now: float) -> float:
        if now - self._started_at >= STEADY_S:
            self._quick_exits = 0
        delay: float = min(FIRST_DELAY_S * 2.0**self._quick_exits, MAX_DELAY_S)
        self._quick_exits += 1
        self._restart_at = now + delay
        return delay

    def _restart(self, now: float) -> None:
        self._restart_at = None
        self._started_at = now
        try:
            self.child = self._start(True)
        except StartupError as exc:  # the half-started process is stopped already
            delay = self._schedule_restart(now)
            log.error("%s did not start again (%s); next try in %.0f s", self.name, exc, delay)
            return
        self.restarts += 1
        self.child.record_pid(self._pid_dir)
        log.info("%s started again (pid %d, restart %d)", self.name, self.child.pid, self.restarts)
