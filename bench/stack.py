"""The real components the benchmarks run against, started here and stopped on exit.

One redis-server, one moto server (`infra.local_table`, one request at a time, in a
process of its own like `make run`'s), one private dockerd with the busybox image,
and on demand gunicorn (Corral's app or the bare baseline app) and rq workers.
Every process runs in a session of its own and is stopped with its whole group, in
reverse order, also on Ctrl-C, SIGTERM or an error.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import redis as redis_lib

from infra.local_image import import_busybox
from infra.table.dynamo import Dynamo, make_client
from infra.table.repository import Repository
from infra.table.schema import table_definition
from scripts.local_processes import Child
from shared.settings import Settings

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the venv's console scripts: gunicorn, rq
START_TIMEOUT_S = 30.0
SERVE_TABLE = (
    "import sys; from infra.local_table import serve_forever; "
    "serve_forever(sys.argv[1], int(sys.argv[2]))"
)
# moto takes any credentials; boto3 needs some to sign with, and must never look
# further (no metadata service).
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


class StackError(RuntimeError):
    """A component did not start; the message carries the tail of its log."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Proc(Child):
    """A child process of the benchmark (as `make run` starts its own), that can be
    waited on until it is ready."""

    def wait_until(self, ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if not self.alive():
                raise StackError(f"{self.name} exited while starting:\n{self.log_tail()}")
            if ready():
                return
            time.sleep(0.1)
        raise StackError(f"waited {START_TIMEOUT_S:.0f} s for {what}:\n{self.log_tail()}")


@dataclass(frozen=True)
class Served:
    url: str
    pid: int  # gunicorn's master; its workers are its children


class Stack:
    """Redis, the table server and dockerd for the whole run; gunicorn and rq workers
    per benchmark. Use as a context manager."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self._exit = contextlib.ExitStack()
        self._tables = itertools.count()
        self.redis_url = ""
        self.moto_endpoint = ""
        self.docker_url = ""
        self.image = ""
        self.moto_pid = 0

    # -- the whole run --------------------------------------------------------------

    def __enter__(self) -> Stack:
        try:
            self._start_redis()
            self._start_moto()
            self._start_dockerd()
        except BaseException:
            self._exit.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._exit.close()

    def _spawn(self, name: str, command: list[str], env: dict[str, str] | None = None,
               stop_timeout: float = 10.0) -> Proc:  # fmt: skip
        log_path = self.logs / f"{name.split()[0]}.log"
        proc = Proc(name, command, env or self.base_env(), log_path, stop_timeout)
        self._exit.callback(proc.stop)
        return proc

    def _start_redis(self) -> None:
        port = free_port()
        workdir = self.workdir / "redis"
        workdir.mkdir(exist_ok=True)
        command = [
            "redis-server", "--port", str(port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(workdir),
        ]  # fmt: skip
        proc = self._spawn("redis-server", command)
        proc.wait_until(lambda: _listening(port), f"redis-server on {port}")
        self.redis_url = f"redis://127.0.0.1:{port}/0"

    def _start_moto(self) -> None:
        port = free_port()
        command = [sys.executable, "-c", SERVE_TABLE, "127.0.0.1", str(port)]
        proc = self._spawn("moto", command)
        proc.wait_until(lambda: _listening(port), f"the moto server on {port}")
        self.moto_pid = proc.process.pid
        self.moto_endpoint = f"http://127.0.0.1:{port}"

    def _start_dockerd(self) -> None:
        # The test suite's dockerd: every path of its own, no networking of its own,
        # so it runs beside `make run`'s and the tests' engines.
        from tests.fixtures.dockerd import DockerdError, start_dockerd

        try:
            handle = start_dockerd(self.workdir / "dockerd")
        except DockerdError as exc:
            raise StackError(str(exc)) from exc
        self._exit.callback(handle.stop)
        self.docker_url = handle.url
        client = handle.client()
        try:
            self.image = import_busybox(client)
        finally:
            client.close()

    # -- helpers for the benchmarks -------------------------------------------------

    def base_env(self) -> dict[str, str]:
        env = dict(os.environ) | AWS_ENV
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def settings(self, name: str) -> Settings:
        return Settings(
            table_name=f"bench-{name}-{next(self._tables)}",
            dynamodb_endpoint=self.moto_endpoint,
            redis_url=self.redis_url,
            queue_name="corral",
        )

    def corral_env(self, settings: Settings) -> dict[str, str]:
        return self.base_env() | {
            "CORRAL_TABLE": settings.table_name,
            "CORRAL_DYNAMODB_ENDPOINT": self.moto_endpoint,
            "CORRAL_REDIS_URL": self.redis_url,
            "CORRAL_QUEUE": settings.queue_name,
            "CORRAL_PRIORITY_QUEUE": settings.priority_queue_name,
        }

    @contextlib.contextmanager
    def table(self, settings: Settings) -> Iterator[Repository]:
        """A fresh table for one benchmark, deleted afterwards (moto holds it in memory)."""
        client = make_client(settings)
        client.create_table(**table_definition(settings.table_name))
        try:
            yield Repository(Dynamo(client, settings.table_name))
        finally:
            with contextlib.suppress(Exception):
                client.delete_table(TableName=settings.table_name)

    def redis(self) -> redis_lib.Redis:  # type: ignore[type-arg]
        return redis_lib.Redis.from_url(self.redis_url)

    def flush_redis(self) -> None:
        conn = self.redis()
        try:
            conn.flushall()
        finally:
            conn.close()

    def docker(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.docker_url, timeout=60)

    def remove_containers(self) -> None:
        client = self.docker()
        try:
            for container in client.containers.list(all=True, sparse=True):
                with contextlib.suppress(docker.errors.DockerException):
                    container.remove(force=True, v=True)
        finally:
            client.close()

    @contextlib.contextmanager
    def gunicorn(self, app: str, env: dict[str, str] | None = None) -> Iterator[Served]:
        """`app` under gunicorn with the repository's gunicorn.conf.py."""
        port = free_port()
        env = (env or self.base_env()) | {
            "CORRAL_BIND": f"127.0.0.1:{port}",
            "CORRAL_WEB_GRACEFUL_TIMEOUT": "5",
        }
        command = [str(BIN / "gunicorn"), "--config", "gunicorn.conf.py", app]
        proc = Proc(f"gunicorn {app}", command, env, self.logs / "gunicorn.log")
        url = f"http://127.0.0.1:{port}"
        try:
            proc.wait_until(lambda: _answers(f"{url}/health"), f"gunicorn ({app}) to answer")
            yield Served(url, proc.process.pid)
        finally:
            proc.stop()

    @contextlib.contextmanager
    def workers(self, settings: Settings, count: int) -> Iterator[list[Proc]]:
        """`count` plain `rq worker` processes (JSON serializer) on Corral's queues,
        as `make run` starts them."""
        command = [
            str(BIN / "rq"), "worker", "--with-scheduler",
            "--worker-class", "workers.worker.CorralWorker",
            "--serializer", "rq.serializers.JSONSerializer",
            "-u", settings.redis_url,
            settings.priority_queue_name, settings.queue_name,
        ]  # fmt: skip
        procs: list[Proc] = []
        conn = self.redis()
        try:
            before = conn.scard("rq:workers")
            for index in range(count):
                procs.append(
                    Proc(
                        f"rq worker {index}",
                        command,
                        self.corral_env(settings),
                        self.logs / "rq-worker.log",
                        stop_timeout=30.0,
                    )
                )
            for proc in procs:
                proc.wait_until(
                    lambda: conn.scard("rq:workers") >= before + count, "the rq workers to register"
                )
            yield procs
        finally:
            for proc in procs:
                proc.stop()
            conn.close()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def cpu_seconds(root: int) -> float:
    """User + system CPU time of process `root` and its living descendants, with the
    children they reaped (an rq worker's forked work horses)."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents[int(entry.name)] = int(fields[1])
        used[int(entry.name)] = sum(int(f) for f in fields[11:15]) / ticks
    family, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in family:
                family.add(pid)
                frontier.append(pid)
    return sum(used.get(pid, 0.0) for pid in family)


def process_env_for_boto() -> None:
    """Credentials and region for the boto3 clients of this process."""
    for name, value in AWS_ENV.items():
        os.environ.setdefault(name, value)
