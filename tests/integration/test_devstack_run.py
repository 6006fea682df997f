"""`make run` (python -m devstack) as a user runs it, in a state directory of its own:
its supervisor starts a killed worker again (on a machine without QEMU, where it runs
without a VM host and says so), a run killed with SIGKILL leaves nothing that stops
the next one from getting a docker host and a VM host (its network namespace
included), and the VM it prints an example for boots and answers on its forwarded
SSH port; Ctrl-C (SIGTERM) leaves no namespace behind."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.processes import REPO, free_port, stop_recorded
from devstack.seed import ADMIN, PUBLIC, ApiClient
from devstack.sshd_host import namespace_exists
from devstack.vmhost import namespace_names
from tests.fixtures.vm_images import CACHE_ROOT

pytestmark = pytest.mark.integration
START_TIMEOUT_S = 180.0
VM_RUNNING_TIMEOUT_S = 120.0  # the provision job: a disk, a seed ISO, QEMU started
VM_ANSWER_TIMEOUT_S = 150.0  # a TCG boot takes 25-40 s on an idle machine, more when busy


class Run:
    """One `python -m devstack` process on `state_dir`."""

    def __init__(self, state_dir: Path, port: int, env: dict[str, str] | None = None) -> None:
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
                    "--vm-images",  # built once per machine, shared with the VM tests
                    str(CACHE_ROOT),
                ],
                cwd=REPO,
                env=env,
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

    def namespace(self) -> str:
        return namespace_names(self.state_dir / "vmhost")[0]

    def recorded_pid(self, name: str) -> int:
        return int((self.state_dir / "pids" / f"{name}.pid").read_text().split()[0])

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(90)


@pytest.fixture
def state_dir() -> Iterator[Path]:
    # Under /tmp, open to others: make run's PostgreSQL runs as the postgres user, which
    # must reach its folder (pytest's temporary root is private to root).
    parent = Path(tempfile.mkdtemp(prefix="corral-run-"))
    parent.chmod(0o755)
    runs_dir = parent / "corral"
    yield runs_dir
    stop_recorded(runs_dir / "pids")  # whatever a failing test left running
    shutil.rmtree(parent, ignore_errors=True)


def _path_without_qemu(bin_dir: Path) -> dict[str, str]:
    """The environment with a PATH that finds every program it found, but QEMU's."""
    bin_dir.mkdir()
    for folder in os.environ["PATH"].split(os.pathsep):
        for program in Path(folder).glob("*"):
            link = bin_dir / program.name
            if not program.name.startswith("qemu") and not link.exists():
                link.symlink_to(program)
    return os.environ | {"PATH": str(bin_dir)}


def test_a_killed_worker_is_started_again_and_jobs_still_run(
    state_dir: Path, tmp_path: Path
) -> None:
    run = Run(state_dir, free_port(), _path_without_qemu(tmp_path / "bin"))
    try:
        local = run.wait_ready()
        assert local["docker_host"], run.text()
        # Without QEMU it says what is missing and runs on, without a VM host
        assert "no VM host: qemu-img is not installed" in run.text()
        assert "VM host:      NONE" in run.text() and "hello-vm" not in run.text()
        assert local["vm_host_id"] is None and local["vm_egg_id"] is None
        assert not namespace_exists(run.namespace())
        worker = run.recorded_pid("worker-1")
        os.kill(worker, signal.SIGKILL)
        _wait_for(lambda: run.recorded_pid("worker-1") != worker, 30, run)
        assert _alive(run.recorded_pid("worker-1"))
        assert run.process.poll() is None, run.text()
        assert "worker-1 (rq) (pid" in run.text() and "started again" in run.text()
        _create_and_see_running(local, "after-kill")
        _managed_database_ready(local)
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
            for name in ("dockerd", "vmhost-sshd", "api", "worker-1", "worker-2", "redis-server")
        }
    finally:
        os.killpg(first.process.pid, signal.SIGKILL)  # the launcher only: its children stay
        first.process.wait()
    assert all(_alive(pid) for pid in left.values())
    assert namespace_exists(first.namespace())  # stale: the next run must take it over
    third = Run(state_dir, free_port())
    try:
        local = third.wait_ready()
        assert local["docker_host"] and local["vm_host_id"], third.text()
        assert "left running by a make run that was killed" in third.text()
        assert not any(_alive(pid) for pid in left.values())
        _create_and_see_running(local, "after-recovery")
        _boot_the_printed_vm_and_reach_its_ssh_port(local, third.text())
        _create_the_printed_env(local, third.text())
    finally:
        assert third.stop() == 0, third.text()
    assert not list((state_dir / "pids").glob("*.pid"))
    assert not namespace_exists(third.namespace()), "SIGTERM left the VM host's namespace"


def _boot_the_printed_vm_and_reach_its_ssh_port(local: dict[str, Any], banner: str) -> None:
    """The tenant VM of the banner's example, created as printed: it runs, and its
    forwarded SSH port answers with the demo guest's greeting."""
    printed = re.search(r"-d '(\{\"name\":\"hello-vm\"[^']*)'", banner)
    assert printed, banner
    created = _call(local, "POST", "/containers", json.loads(printed.group(1)))
    path = f"/containers/{created['container']['id']}"
    vm: dict[str, Any] = {}

    def running() -> bool:
        vm.update(_call(local, "GET", path))
        if vm["status"] == "error":  # the operator's view carries the host's detail
            detail = _call(local, "GET", f"/vms/{vm['id']}", None, ADMIN, local["operator_key"])
            raise AssertionError(json.dumps(detail, indent=1))
        return bool(vm["status"] == "running" and vm["vm"]["forwarded_ports"])

    _wait_for(running, VM_RUNNING_TIMEOUT_S, vm)
    address, port = vm["vm"]["address"], vm["vm"]["forwarded_ports"]["22"]
    answer = b""

    def greets() -> bool:
        nonlocal answer
        with contextlib.suppress(OSError), socket.create_connection((address, port), 3) as conn:
            conn.settimeout(3)
            answer = conn.recv(256)
        return answer.startswith(b"corral-guest-hello 22")

    _wait_for(greets, VM_ANSWER_TIMEOUT_S, f"{address}:{port} answered {answer!r}; {vm}")


def _create_the_printed_env(local: dict[str, Any], banner: str) -> None:
    """The banner's environment example (003's VM on the VM host's image) is accepted
    and placed on the VM host (its boot is not waited for: stopping the run ends it)."""
    printed = re.search(rf"{ADMIN}/envs .*\n.* -d '([^']*)'", banner)
    assert printed, banner
    operator = local["operator_key"]
    created = _call(local, "POST", "/envs", json.loads(printed.group(1)), ADMIN, operator)
    assert created["id"] == "my-env", created
    placed = {vm["host_id"] for vm in created["vms"]}
    assert placed == {local["vm_host_id"]}, created


def _create_and_see_running(local: dict[str, Any], name: str) -> None:
    created = _call(local, "POST", "/containers", {"name": name, "egg_id": local["egg_id"]})
    path = f"/containers/{created['container']['id']}"
    last: dict[str, Any] = {}

    def running() -> bool:
        last.update(_call(local, "GET", path))
        return bool(last["status"] == "running")

    _wait_for(running, 60, last)


def _managed_database_ready(local: dict[str, Any]) -> None:
    """make run registers its PostgreSQL: a managed database on the demo cluster works."""
    body = {"cluster_id": local["cluster_id"], "name": "demo-db"}
    admin = {"base": "/api/v1", "key": local["operator_key"]}
    made = _call(local, "POST", "/managed-databases", body, **admin)
    last: dict[str, Any] = {}

    def ready() -> bool:
        last.update(_call(local, "GET", f"/managed-databases/{made['id']}", **admin))
        return bool(last["status"] == "ready")

    _wait_for(ready, 60, last)


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


def _call(
    local: dict[str, Any],
    method: str,
    path: str,
    body: Any = None,
    base: str = PUBLIC,
    key: str | None = None,
) -> dict[str, Any]:
    """The tenant API with the demo key, or `base` with `key`; ApiError says what failed."""
    return ApiClient(local["url"], key or local["api_key"]).call(method, base + path, body)


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
