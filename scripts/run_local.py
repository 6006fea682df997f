"""`make run`: Corral on this machine, on embedded servers, in the foreground.

Starts, in this order: a private dockerd (when it can), redis-server, a moto server
holding the table, the API under gunicorn, an rq worker, and rq cron once
`workers/cron.py` exists. Then it seeds a demo cluster through the API, prints its
API key once, writes `.corral/local.json` (mode 0600), and waits.

Ctrl-C or SIGTERM stops everything it started, in reverse order, dockerd last with
the containers it ran. The table lives in the moto server's memory, so every run
starts from an empty Corral.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from local_bootstrap import PUBLIC, ApiClient, ApiError, Demo, seed
from local_dockerd import DockerdError, LocalDockerd
from local_processes import Child, free_port, port_is_free

from infra.local_image import import_busybox
from infra.table.dynamo import Dynamo, make_client
from infra.table.repository import Repository
from infra.table.schema import table_definition
from services.keys import mint_key
from shared.clock import new_id, utc_now
from shared.settings import Settings

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the venv's console scripts: gunicorn, rq
STATE_DIR = REPO / ".corral"
TABLE = "corral"
QUEUE = "corral"
WAIT_S = 30.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
SERVE_TABLE = (
    "import sys; from infra.local_table import serve_forever; "
    "serve_forever(sys.argv[1], int(sys.argv[2]))"
)

log = logging.getLogger("corral.run")


class Shutdown(BaseException):
    """Ctrl-C, SIGTERM or SIGHUP (the terminal closed): stop everything. A
    BaseException, like KeyboardInterrupt, so that no library's `except Exception`
    (botocore retries on any) swallows it."""


class StartupError(Exception):
    """A component did not start; everything started so far is stopped."""


class Launcher:
    def __init__(self, port: int, stack: contextlib.ExitStack) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.stack = stack
        self.logs = STATE_DIR / "logs"
        self.children: list[Child] = []
        self.dockerd: LocalDockerd | None = None
        self.env = _base_env()

    # -- start ----------------------------------------------------------------------

    def start(self) -> None:
        self._claim_state_dir()
        docker_url = self._start_dockerd()
        self.env["CORRAL_REDIS_URL"] = self._start_redis()
        self.env["CORRAL_DYNAMODB_ENDPOINT"] = self._start_moto()
        settings = Settings.from_env(self.env)
        repo = self._create_table(settings)
        self._start_api()
        self._start_worker(settings)
        self._start_cron(settings)
        operator_key = mint_key(repo, None, "local-operator", utc_now(), new_id)[1]
        try:
            demo = seed(ApiClient(self.url, operator_key), docker_url, STATE_DIR)
        except ApiError as exc:
            raise StartupError(f"seeding the demo cluster failed: {exc}") from exc
        self._write_local_json(settings, operator_key, demo, docker_url)
        print_banner(self.url, demo, docker_url)

    def _claim_state_dir(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        pidfile = STATE_DIR / "run.pid"
        if pidfile.exists():
            other = int(pidfile.read_text().strip() or 0)
            if other and _is_launcher(other):
                raise StartupError(f"make run is already running (pid {other})")
        pidfile.write_text(f"{os.getpid()}\n")
        self.stack.callback(pidfile.unlink, missing_ok=True)

    def _start_dockerd(self) -> str | None:
        dockerd = LocalDockerd(STATE_DIR / "docker" / "data", self.logs / "dockerd.log")
        try:
            dockerd.start()
        except DockerdError as exc:
            log.warning("no docker host: %s", exc)
            log.warning("running WITHOUT a docker host: new containers get no_host_available")
            return None
        self.stack.callback(_stop_dockerd, dockerd)  # first started, so stopped last
        self.dockerd = dockerd
        log.info("started dockerd (pid %d) at %s", _pid(dockerd), dockerd.url)
        leftovers = dockerd.remove_all_containers()
        if leftovers:
            log.info("removed %d container(s) left by an earlier run", leftovers)
        client = dockerd.client()
        try:
            log.info("image %s ready", import_busybox(client))
        finally:
            client.close()
        return dockerd.url

    def _start_redis(self) -> str:
        port = free_port()
        workdir = STATE_DIR / "redis"
        workdir.mkdir(exist_ok=True)
        command = [
            "redis-server",
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(workdir),
        ]  # fmt: skip
        child = self._spawn("redis-server", command)
        self._wait_for_port(child, port)
        return f"redis://127.0.0.1:{port}/0"

    def _start_moto(self) -> str:
        port = free_port()
        # infra.local_table's moto server answers one request at a time: moto's own
        # threaded server is not safe for concurrent transactions.
        command = [sys.executable, "-c", SERVE_TABLE, "127.0.0.1", str(port)]
        child = self._spawn("moto", command)
        self._wait_for_port(child, port)
        return f"http://127.0.0.1:{port}"

    def _create_table(self, settings: Settings) -> Repository:
        client = make_client(settings)
        client.create_table(**table_definition(settings.table_name))
        client.get_waiter("table_exists").wait(TableName=settings.table_name)
        log.info("created table %s", settings.table_name)
        return Repository(Dynamo(client, settings.table_name))

    def _start_api(self) -> None:
        if not port_is_free(self.port):
            raise StartupError(f"127.0.0.1:{self.port} is in use: try `make run PORT=8081`")
        # gunicorn.conf.py holds the settings (gthread workers for long-polls); these
        # environment variables are its knobs.
        self.env["CORRAL_BIND"] = f"127.0.0.1:{self.port}"
        self.env.setdefault("CORRAL_WEB_GRACEFUL_TIMEOUT", "5")  # Ctrl-C need not wait 30 s
        command = [str(BIN / "gunicorn"), "--config", "gunicorn.conf.py", "handlers.app:get_app()"]
        child = self._spawn("api (gunicorn)", command)
        self._wait_until(child, self._healthy, f"{self.url}/health to answer 200")

    def _start_worker(self, settings: Settings) -> None:
        command = [
            str(BIN / "rq"), "worker", "--with-scheduler",
            "--worker-class", "workers.worker.CorralWorker",
            "--serializer", "rq.serializers.JSONSerializer",
            "-u", settings.redis_url,
            settings.priority_queue_name, settings.queue_name,
        ]  # fmt: skip
        # A worker finishes its job before it stops: give it the time a job may take.
        child = self._spawn("worker (rq)", command, stop_timeout=30.0)
        self._wait_until(child, self._worker_registered, "the rq worker to register")

    def _start_cron(self, settings: Settings) -> None:
        """rq cron enqueues with rq's default serializer (it has no other), so its jobs
        go to a queue of their own, served by a worker without the JSON serializer."""
        if not (REPO / "workers" / "cron.py").exists():
            log.info("workers/cron.py does not exist yet: rq cron not started (no sweeps)")
            return
        cron_queue = getattr(importlib.import_module("workers.cron"), "CRON_QUEUE", "corral-cron")
        self._spawn(
            "cron (rq)", [str(BIN / "rq"), "cron", "workers.cron", "-u", settings.redis_url]
        )
        command = [str(BIN / "rq"), "worker", "-u", settings.redis_url, cron_queue]
        self._spawn(f"cron-worker (rq, queue {cron_queue})", command, stop_timeout=30.0)

    def _spawn(self, name: str, command: list[str], stop_timeout: float = 10.0) -> Child:
        log_path = self.logs / f"{name.split()[0]}.log"  # "api (gunicorn)" logs to api.log
        child = Child(name, command, self.env, log_path, stop_timeout)
        self.stack.callback(child.stop)
        self.children.append(child)
        return child

    # -- readiness ------------------------------------------------------------------

    def _wait_for_port(self, child: Child, port: int) -> None:
        self._wait_until(child, lambda: not port_is_free(port), f"127.0.0.1:{port} to listen")

    def _wait_until(self, child: Child, ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if not child.alive():
                raise StartupError(f"{child.name} exited while starting:\n{child.log_tail()}")
            if ready():
                return
            time.sleep(0.2)
        raise StartupError(f"waited {WAIT_S:.0f} s for {what}:\n{child.log_tail()}")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=5) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _worker_registered(self) -> bool:
        import redis

        conn = redis.Redis.from_url(self.env["CORRAL_REDIS_URL"])
        try:
            return bool(conn.scard("rq:workers"))
        finally:
            conn.close()

    # -- the local.json file ------------------------------------------------------------

    def _write_local_json(
        self, settings: Settings, operator_key: str, demo: Demo, docker_url: str | None
    ) -> None:
        path = STATE_DIR / "local.json"
        content = {
            "url": self.url,
            "operator_key": operator_key,
            "cluster_id": demo.cluster_id,
            "api_key": demo.api_key,
            "egg_id": demo.egg_id,
            "host_id": demo.host_id,
            "docker_host": docker_url,
            "redis_url": settings.redis_url,
            "dynamodb_endpoint": settings.dynamodb_endpoint,
            "table": settings.table_name,
        }
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # also when an older file was there with looser bits
        with os.fdopen(fd, "w") as out:
            json.dump(content, out, indent=2)
            out.write("\n")
        # Its keys die with the in-memory table: do not leave them looking valid.
        self.stack.callback(path.unlink, missing_ok=True)

    # -- running ------------------------------------------------------------------------

    def supervise(self) -> None:
        """Return when a component dies (Ctrl-C and SIGTERM arrive as Shutdown)."""
        while True:
            for child in self.children:
                if not child.alive():
                    code = child.process.returncode
                    log.error("%s exited with %s:\n%s", child.name, code, child.log_tail())
                    return
            if self.dockerd is not None and not self.dockerd.alive():
                log.error("dockerd exited:\n%s", self.dockerd.log_tail())
                return
            time.sleep(1.0)


def print_banner(url: str, demo: Demo, docker_url: str | None) -> None:
    base = f"{url}{PUBLIC}"
    auth = '-H "Authorization: Bearer $CORRAL_KEY"'
    body = json.dumps({"name": "hello", "egg_id": demo.egg_id}, separators=(",", ":"))
    if docker_url is not None:
        host = f"docker host:  {docker_url}   (docker -H {docker_url} ps)"
    else:
        host = "docker host:  NONE (dockerd did not start: see the warning above)"
    lines = [
        "",
        f"Corral is running at {url}   (Ctrl-C stops everything)",
        f"  {host}",
        f"  logs:         {_short(STATE_DIR / 'logs')}/",
        f"  local.json:   {_short(STATE_DIR / 'local.json')} (operator key, cluster id, API key)",
        "",
        "The demo cluster's API key (shown once; also in .corral/local.json):",
        "",
        f"  export CORRAL_KEY={demo.api_key}",
        "",
        "Create a container:",
        "",
        f"  curl -s -X POST {base}/containers {auth} \\",
        f"    -H 'Content-Type: application/json' -d '{body}'",
        "",
        "Follow its operation (the operation.id of that answer):",
        "",
        f'  curl -s "{base}/operations/<operation id>/wait?timeout=25" {auth}',
        "",
    ]
    print("\n".join(lines), flush=True)


# -- small helpers -------------------------------------------------------------------


def _base_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "CORRAL_TABLE": TABLE,
            "CORRAL_QUEUE": QUEUE,
            # moto takes any credentials; boto3 needs some to sign with
            "AWS_ACCESS_KEY_ID": env.get("AWS_ACCESS_KEY_ID", "local"),
            "AWS_SECRET_ACCESS_KEY": env.get("AWS_SECRET_ACCESS_KEY", "local"),
            "AWS_DEFAULT_REGION": env.get("AWS_DEFAULT_REGION", "us-east-1"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def _is_launcher(pid: int) -> bool:
    try:
        return b"run_local.py" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _stop_dockerd(dockerd: LocalDockerd) -> None:
    pid = _pid(dockerd)
    removed = dockerd.remove_all_containers()
    log.info("removed %d container(s)", removed)
    dockerd.stop()
    log.info("stopped dockerd (pid %d)", pid)


def _pid(dockerd: LocalDockerd) -> int:
    return dockerd.process.pid if dockerd.process is not None else 0


def _short(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


# -- signals and main ------------------------------------------------------------------


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise Shutdown(signal.Signals(signum).name)


def _while_stopping(signum: int, frame: FrameType | None) -> None:
    log.info("%s: already stopping, please wait", signal.Signals(signum).name)


def _ignore_further_signals() -> None:
    for signum in STOP_SIGNALS:
        signal.signal(signum, _while_stopping)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080, help="API port on 127.0.0.1")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s run: %(message)s", datefmt="%X")
    logging.getLogger("botocore").setLevel(logging.WARNING)
    os.environ.update(_base_env())  # for the boto3 client of this process
    for signum in STOP_SIGNALS:
        signal.signal(signum, _on_signal)
    code = 0
    stack = contextlib.ExitStack()
    try:
        launcher = Launcher(args.port, stack)
        launcher.start()
        launcher.supervise()
        code = 1
    except Shutdown as exc:
        log.info("%s: stopping everything", exc)
    except StartupError as exc:
        log.error("%s", exc)
        code = 1
    finally:
        _ignore_further_signals()
        stack.close()
        log.info("all stopped")
    return code


if __name__ == "__main__":
    sys.exit(main())
