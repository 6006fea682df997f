"""The real components the benchmarks run against, started by devstack as `make run`
and the tests start them, and stopped on exit.

One redis-server, one table server, one private dockerd with the busybox image, and
on demand gunicorn (Corral's app or the bare baseline app) and rq workers. Every
process runs in a session of its own and is stopped with its whole group, in reverse
order, also on Ctrl-C, SIGTERM or an error.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import redis as redis_lib

from devstack.corral import rq_env, start_api, worker_command
from devstack.dockerd import start_dockerd
from devstack.image import import_busybox
from devstack.processes import REPO, Child, free_port
from devstack.redis_server import start_redis
from devstack.table import fresh_table, start_table_server
from infra.table.repository import Repository
from shared.settings import Settings

# The table server takes any credentials; boto3 needs some to sign with, and must
# never look further (no metadata service).
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@dataclass(frozen=True)
class Served:
    url: str
    pid: int  # gunicorn's master; its workers are its children


class Stack:
    """Redis, the table server and dockerd for the whole run; gunicorn and rq workers
    per benchmark. Use as a context manager."""

    def __init__(self, workdir: Path, compare_with: Path | None = None) -> None:
        self.workdir = workdir
        # Another checkout of Corral (e.g. `git worktree add --detach DIR main`) whose
        # app the API benchmark serves beside this one's, against the same servers.
        self.compare_with = compare_with
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self._exit = contextlib.ExitStack()
        self._tables = itertools.count()
        self.redis_url = ""
        self.table_endpoint = ""
        self.docker_url = ""
        self.image = ""
        self.table_pid = 0

    def sides(self) -> list[tuple[str, Path | None]]:
        """The code the worker benchmarks measure: this checkout's and, with
        `--compare-with`, that one's (`before`), each with its own API and workers."""
        ours: list[tuple[str, Path | None]] = [("Corral", None)]
        return ours + ([("before", self.compare_with)] if self.compare_with else [])

    # -- the whole run --------------------------------------------------------------

    def __enter__(self) -> Stack:
        try:
            self._start()
        except BaseException:
            self._exit.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._exit.close()

    def _start(self) -> None:
        redis = start_redis(self.workdir / "redis", self.logs / "redis-server.log")
        self._exit.callback(redis.stop)
        self.redis_url = redis.url
        table = start_table_server(self.base_env(), self.logs / "table.log")
        self._exit.callback(table.stop)
        self.table_endpoint, self.table_pid = table.url, table.child.pid
        dockerd = start_dockerd(self.workdir / "dockerd")
        self._exit.callback(dockerd.stop)
        self.docker_url = dockerd.url
        client = dockerd.client()
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
            dynamodb_endpoint=self.table_endpoint,
            redis_url=self.redis_url,
            queue_name="corral",
        )

    def corral_env(self, settings: Settings) -> dict[str, str]:
        return self.base_env() | {
            "CORRAL_TABLE": settings.table_name,
            "CORRAL_DYNAMODB_ENDPOINT": self.table_endpoint,
            "CORRAL_REDIS_URL": self.redis_url,
            **rq_env(self.redis_url),
            "CORRAL_QUEUE": settings.queue_name,
            "CORRAL_PRIORITY_QUEUE": settings.priority_queue_name,
        }

    @contextlib.contextmanager
    def table(self, settings: Settings) -> Iterator[Repository]:
        """A fresh table for one benchmark, deleted afterwards."""
        with fresh_table(settings) as dynamo:
            yield Repository(dynamo)

    def redis(self) -> redis_lib.Redis[bytes]:
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
    def gunicorn(
        self, app: str, env: dict[str, str] | None = None, *, code: Path | None = None
    ) -> Iterator[Served]:
        """`app` under gunicorn with the repository's gunicorn.conf.py; with `code`, the
        app's modules are imported from that checkout instead of this one."""
        env = env or self.base_env()
        if code is not None:
            # Ahead of this venv's editable install on sys.path. gunicorn puts the
            # directory it starts in first on its workers' sys.path (a --chdir given in
            # GUNICORN_CMD_ARGS did not change that: both sides then served this
            # checkout), so it also starts in the other checkout.
            env = env | {"PYTHONPATH": str(code)}
        server = start_api(
            env, free_port(), self.logs / "gunicorn.log", app, f"gunicorn {app}", code=code or REPO
        )
        try:
            yield Served(server.url, server.child.pid)
        finally:
            server.stop()

    @contextlib.contextmanager
    def workers(
        self, settings: Settings, count: int, *, code: Path | None = None
    ) -> Iterator[list[Child]]:
        """`count` Corral `rq worker` processes on Corral's queues, as `make run` starts
        them; with `code`, running that checkout's job code instead of this one's."""
        children: list[Child] = []
        env = self.corral_env(settings)
        if code is not None:
            env = env | {"PYTHONPATH": str(code)}
        conn = self.redis()
        try:
            before = conn.scard("rq:workers")
            for index in range(count):
                children.append(
                    Child(
                        f"rq worker {index}",
                        worker_command(settings),
                        env,
                        self.logs / "rq-worker.log",
                        stop_timeout=30.0,
                        cwd=code or REPO,
                    )
                )
            for child in children:
                child.wait_until(
                    lambda: conn.scard("rq:workers") >= before + count, "the rq workers to register"
                )
            yield children
        finally:
            for child in children:
                child.stop()
            conn.close()


def cpu_seconds(root: int) -> float:
    """User + system CPU time of process `root` and its living descendants, with the
    children they reaped (the scheduler rq forks, a plain rq worker's work horses)."""
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
