"""`make run` (python -m devstack) as a user runs it, in a state directory of its own:
its supervisor starts a killed worker again, and a run killed with SIGKILL leaves
nothing that stops the next one from getting a docker host."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.processes import REPO, free_port, stop_recorded
from devstack.seed import PUBLIC

pytestmark = pytest.mark.integration
START_TIMEOUT_S = 180.0


class Run:
    """One `python -m devstack` process on `state_dir`."""

    def __init__(self, state_dir: Path, port: int) -> None:
        self.state_dir = state_dir
        self.port = port
        self.output = state_dir.parent / f"run-{time.monotonic_ns()}.out"
        with self.output.open("wb") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "devstack",
                    "--port",
                    str(port),
                    "--state-dir",
                    str(state_dir),
                ],
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def wait_ready(self) -> dict[str, Any]:
        _wait_for(lambda: "Corral is running at" in self.text(), START_TIMEOUT_S, self)
        local: dict[str, Any] = json.loads((self.state_dir / "local.json").read_text())
        return local

    def recorded_pid(self, name: str) -> int:
        return int((self.state_dir / "pids" / f"{name}.pid").read_text().split()[0])

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(90)


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    runs_dir = tmp_path / "corral"
    yield runs_dir
    stop_recorded(runs_dir / "pids")  # whatever a failing test left running


def test_a_killed_worker_is_started_again_and_jobs_still_run(state_dir: Path) -> None:
    run = Run(state_dir, free_port())
    try:
        local = run.wait_ready()
        assert local["docker_host"], run.text()
        worker = run.recorded_pid("worker-1")
        os.kill(worker, signal.SIGKILL)
        _wait_for(lambda: run.recorded_pid("worker-1") != worker, 30, run)
        assert _alive(run.recorded_pid("worker-1"))
        assert run.process.poll() is None, run.text()
        assert "worker-1 (rq) (pid" in run.text() and "started again" in run.text()
        _create_and_see_running(local, "after-kill")
        _open_the_printed_url(run, local)
    finally:
        assert run.stop() == 0, run.text()
    assert not list((state_dir / "pids").glob("*.pid"))


def test_the_next_run_recovers_what_a_killed_run_left(state_dir: Path) -> None:
    first = Run(state_dir, free_port())
    try:
        first.wait_ready()
        second = Run(state_dir, free_port())  # refused: the first one lives
        assert second.process.wait(60) == 1
        assert "make run is already running" in second.text()
        left = {
            name: first.recorded_pid(name)
            for name in ("dockerd", "api", "worker-1", "worker-2", "redis-server")
        }
    finally:
        os.killpg(first.process.pid, signal.SIGKILL)  # the launcher only: its children stay
        first.process.wait()
    assert all(_alive(pid) for pid in left.values())
    third = Run(state_dir, free_port())
    try:
        local = third.wait_ready()
        assert local["docker_host"], third.text()
        assert "left running by a make run that was killed" in third.text()
        assert not any(_alive(pid) for pid in left.values())
        _create_and_see_running(local, "after-recovery")
    finally:
        assert third.stop() == 0, third.text()


def _create_and_see_running(local: dict[str, Any], name: str) -> None:
    created = _call(local, "POST", "/containers", {"name": name, "egg_id": local["egg_id"]})
    path = f"/containers/{created['container']['id']}"
    last: dict[str, Any] = {}

    def running() -> bool:
        last.update(_call(local, "GET", path))
        return bool(last["status"] == "running")

    _wait_for(running, 60, last)


def _open_the_printed_url(run: Run, local: dict[str, Any]) -> None:
    """The README's first steps: create a container of the demo `http` egg, and open
    the URL that `make run` prints for it once it runs."""
    body = {"name": "web", "egg_id": local["http_egg_id"]}
    web_id = _call(local, "POST", "/containers", body)["container"]["id"]
    printed = re.compile(rf"\({web_id}\) runs: open (http://\S+)")
    _wait_for(lambda: printed.search(run.text()) is not None, 60, run)
    match = printed.search(run.text())
    assert match is not None
    with urllib.request.urlopen(match.group(1), timeout=10) as page:
        assert b"Hello from Corral" in page.read()


def _call(local: dict[str, Any], method: str, path: str, body: Any = None) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{local['url']}{PUBLIC}{path}",
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {local['api_key']}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer: dict[str, Any] = json.load(response)
        return answer


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return bool(state != "Z")


def _wait_for(ready: Callable[[], bool], timeout: float, context: object) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.5)
    shown = context.text() if isinstance(context, Run) else context
    raise AssertionError(f"not within {timeout:.0f} s:\n{shown}")
