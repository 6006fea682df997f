"""`make run`: Corral on this machine, on embedded servers, in the foreground.

Starts, in this order: a private dockerd (when it can), a VM host (sshd in a network
namespace, where QEMU runs; when QEMU and a kernel are there: devstack/vmhost.py),
redis-server, DynamoDB Local holding the table, the API under gunicorn, Corral's rq
workers (two by default, each running several jobs at once). Then it seeds a demo cluster
through the API (with the VM host and a qemu egg when there is one), starts rq cron
with the worker of its queue (its first host check records the VM host's images),
prints the cluster's API key once with examples, writes `.corral/local.json` (mode
0600), and waits.

It supervises Corral's own processes: the API, a worker, rq cron or the VM host's
sshd that exits is logged and started again, with a growing delay while it keeps
dying (see devstack/supervisor.py); the servers under them (dockerd, redis-server,
DynamoDB Local) hold the run's state, so one of them dying stops the run. Each
process it starts leaves a pid file in `.corral/pids/`: a run killed before it could
stop them is cleaned up by the next one (it stops what the dead run left behind,
and deletes its VM host's namespace), and only a live `make run` on the same state
directory is refused.

Ctrl-C or SIGTERM stops everything it started, in reverse order: the VM host's
namespace goes with the QEMU processes in it, dockerd last with the containers it
ran. The table lives in DynamoDB Local's memory, so every run starts from an empty
Corral; with `--persist` (`make run PERSIST=1`) it is kept in
`.corral/table/` instead, with the containers and `.corral/local.json`, and the next
`--persist` run goes on from there.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import hashlib
import json
import logging
import os
import secrets
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from botocore.exceptions import ClientError

from devstack.corral import BIN, rq_env, start_api, worker_command
from devstack.databases import DatabaseServer, start_postgres
from devstack.dockerd import Dockerd, start_dockerd
from devstack.image import import_busybox
from devstack.processes import REPO, Child, Server, StartupError, listening, stop_recorded
from devstack.redis_server import start_redis
from devstack.seed import (
    ADMIN,
    PUBLIC,
    ApiClient,
    ApiError,
    Demo,
    VmDemo,
    register_database_host,
    seed,
    seed_vm_host,
    wait_for_image,
)
from devstack.supervisor import Component
from devstack.table import create_table, open_table, start_table_server, table_exists
from devstack.vmhost import VmHost, prepare_vm_host
from infra.jobs import CRON_QUEUE
from infra.table.repository import Repository
from services.keys import mint_key
from shared.clock import new_id, utc_now
from shared.errors import CorralError
from shared.sealing import new_key
from shared.settings import Settings
from shared.states import WorkloadStatus

STATE_DIR = REPO / ".corral"
TABLE = "corral"
QUEUE = "corral"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
IMAGE_CHECK_TIMEOUT_S = 60.0

log = logging.getLogger("corral.run")


class Shutdown(BaseException):
    """Ctrl-C, SIGTERM or SIGHUP (the terminal closed): stop everything. A
    BaseException, like KeyboardInterrupt, so that no library's `except Exception`
    (botocore retries on any) swallows it."""


class Launcher:
    def __init__(
        self,
        port: int,
        persist: bool,
        stack: contextlib.ExitStack,
        state_dir: Path = STATE_DIR,
        workers: int = 2,
        vm_images: Path | None = None,
    ) -> None:
        self.port = port
        self.workers = workers
        self.persist = persist
        self.url = f"http://127.0.0.1:{port}"
        self.stack = stack
        self.state_dir = state_dir
        self.logs = state_dir / "logs"
        self.pids = state_dir / "pids"
        self.kept_table_dir = state_dir / "table"
        self.local_json = state_dir / "local.json"
        self.vm_images = vm_images or state_dir / "vm-images"
        self.servers: list[Child] = []
        self.components: list[Component] = []
        self.dockerd: Dockerd | None = None
        self.vm_host: VmHost | None = None
        self.postgres: DatabaseServer | None = None
        self.env = _base_env()
        self.served: ServedUrls | None = None

    # -- start ----------------------------------------------------------------------

    def _fresh_metrics_dir(self) -> None:
        """Where the API, the workers and rq cron write their metrics (GET /metrics sums
        them): emptied at every start, as prometheus_client wants."""
        metrics_dir = self.state_dir / "metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        self.env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)

    def start(self) -> None:
        self._claim_state_dir()
        self._fresh_metrics_dir()
        self.env.setdefault("CORRAL_SECRET_KEY", _local_secret_key(self.state_dir))
        kept_in = self.kept_table_dir if self.persist else None
        # The table server (a JVM) is the slowest to answer: it starts while the others do.
        pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="table-server")
        table = pool.submit(start_table_server, dict(self.env), self.logs / "table.log", kept_in)
        pool.shutdown(wait=False)
        try:
            docker_url = self._start_dockerd()
            self.vm_host = self._start_vm_host()
            redis_url = self._keep(
                start_redis(self.state_dir / "redis", self.logs / "redis-server.log")
            )
            self.env |= {"CORRAL_REDIS_URL": redis_url} | rq_env(redis_url)
            self.postgres = self._start_postgres()
        except BaseException:
            with contextlib.suppress(StartupError):  # what stopped the start is what to tell
                table.result().stop()
            raise
        self.env["CORRAL_DYNAMODB_ENDPOINT"] = self._keep(table.result())
        settings = Settings.from_env(self.env)
        kept = self.persist and table_exists(settings)
        if kept:
            repo = Repository(open_table(settings))
            shown = _short(self.kept_table_dir)
            log.info("table %s kept in %s: going on from it", settings.table_name, shown)
        else:
            repo = Repository(create_table(settings))
            log.info("created table %s", settings.table_name)
        self._start_api()
        self._start_workers(settings)
        operator_key, demo, vm = self._seed(repo, docker_url, kept)
        self._start_cron()  # its first host check records the VM host's images
        if vm is not None:
            self._wait_for_vm_image(ApiClient(self.url, operator_key), vm)
        self._write_local_json(settings, operator_key, demo, docker_url, vm)
        vm_address = self.vm_host.namespace.address if self.vm_host else None
        print_banner(self.url, demo, docker_url, kept_in, self.state_dir, vm, vm_address)
        self.served = ServedUrls(repo, demo.cluster_id)

    def _seed(
        self, repo: Repository, docker_url: str | None, kept: bool
    ) -> tuple[str, Demo, VmDemo | None]:
        """The operator key, the demo cluster and the VM host's records: seeded through
        the API, or those of the run whose table was kept."""
        earlier = _earlier_run(self.local_json) if kept else None
        demo: Demo | None = None
        vm: VmDemo | None = None
        if earlier is None:
            operator_key = mint_key(repo, None, "local-operator", utc_now(), new_id)[1]
        else:
            operator_key, demo, vm = earlier
        api = ApiClient(self.url, operator_key)
        try:
            if demo is None:
                public_address = self.dockerd.public_address if self.dockerd else None
                demo = seed(api, docker_url, self.state_dir, public_address)
                if self.postgres is not None:
                    register_database_host(api, self.postgres)
            if self.vm_host is None:
                vm = None  # the kept run had a VM host; this one has none
            elif vm is None:
                vm = seed_vm_host(api, demo, self.vm_host, self.state_dir)
        except ApiError as exc:
            raise StartupError(f"seeding the demo cluster failed: {exc}") from exc
        return operator_key, demo, vm

    def _claim_state_dir(self) -> None:
        """Refuse if a live `make run` owns the state directory; else stop what a dead
        one left running (its pid files say what) and take the directory over."""
        self.logs.mkdir(parents=True, exist_ok=True)
        pidfile = self.state_dir / "run.pid"
        if pidfile.exists():
            other = int(pidfile.read_text().strip() or 0)
            if other and _is_launcher(other):
                raise StartupError(f"make run is already running (pid {other})")
        for left in stop_recorded(self.pids):
            log.warning("stopped %s, left running by a make run that was killed", left)
        pidfile.write_text(f"{os.getpid()}\n")
        self.stack.callback(pidfile.unlink, missing_ok=True)

    def _start_dockerd(self) -> str | None:
        try:
            dockerd = start_dockerd(
                self.state_dir / "docker",
                log_path=self.logs / "dockerd.log",
                run_dir=_dockerd_run_dir(self.state_dir),
                keep_data=True,  # the busybox image is imported once
                enforce_storage=True,  # btrfs + the volume plugin: storage_mb is enforced
            )
        except StartupError as exc:
            log.warning("no docker host: %s", exc)
            log.warning("running WITHOUT a docker host: new containers get no_host_available")
            return None
        self.stack.callback(self._stop_dockerd, dockerd)  # first started, so stopped last
        dockerd.child.record_pid(self.pids)
        self.dockerd = dockerd
        log.info("dockerd (pid %d) answers at %s", dockerd.pid, dockerd.url)
        if not self.persist:  # the table that knew them is gone
            leftovers = dockerd.remove_all_containers()
            if leftovers:
                log.info("removed %d container(s) left by an earlier run", leftovers)
        client = dockerd.client()
        try:
            log.info("image %s ready", import_busybox(client))
        finally:
            client.close()
        return dockerd.url

    def _start_postgres(self) -> DatabaseServer | None:
        """The local PostgreSQL that the demo registers as a database host; without it
        (not installed) Corral runs, and managed databases get no_host_available."""
        try:
            server = start_postgres(
                self.state_dir / "postgres", self.logs / "postgres.log", keep=self.persist
            )
        except StartupError as exc:
            log.warning("no database host: %s", exc)
            return None
        self._keep(server.server)
        log.info("PostgreSQL answers on 127.0.0.1:%d", server.port)
        return server

    def _start_vm_host(self) -> VmHost | None:
        try:
            vm_host = prepare_vm_host(
                self.state_dir / "vmhost", self.vm_images, keep_vms=self.persist
            )
        except StartupError as exc:
            log.warning("no VM host: %s", exc)
            log.warning("running WITHOUT a VM host: new VMs get no_host_available")
            return None
        self.stack.callback(self._remove_vm_host, vm_host)  # after its sshd stopped
        log_path = self.logs / "vmhost-sshd.log"
        self._supervise(
            "sshd (VM host)", lambda again: vm_host.start_sshd(log_path, append_log=again)
        )
        log.info("VM host %s in network namespace %s", vm_host.ssh_address, vm_host.namespace.name)
        return vm_host

    def _remove_vm_host(self, vm_host: VmHost) -> None:
        vm_host.remove()
        log.info("deleted network namespace %s with the VMs in it", vm_host.namespace.name)

    def _wait_for_vm_image(self, api: ApiClient, vm: VmDemo) -> None:
        try:
            seen = wait_for_image(api, vm, IMAGE_CHECK_TIMEOUT_S)
        except ApiError as exc:
            raise StartupError(f"asking for the VM host's images failed: {exc}") from exc
        if not seen:
            log.warning(
                "the host check did not record %s on the VM host within %.0f s: VMs get "
                "no_host_available until it does (see %s)",
                vm.image,
                IMAGE_CHECK_TIMEOUT_S,
                _short(self.logs / "cron-worker.log"),
            )

    def _start_api(self) -> None:
        if listening(self.port):
            raise StartupError(f"127.0.0.1:{self.port} is in use: try `make run PORT=8081`")
        log_path = self.logs / "api.log"
        self._supervise(
            "api", lambda again: start_api(self.env, self.port, log_path, append_log=again).child
        )

    def _start_workers(self, settings: Settings) -> None:
        # A worker finishes its job before it stops: give it the time a job may take.
        started = [
            self._spawn(f"worker-{index} (rq)", worker_command(settings), stop_timeout=30.0)
            for index in range(1, self.workers + 1)
        ]
        for worker in started:
            worker.child.wait_until(self._workers_registered, "the rq workers to register")

    def _start_cron(self) -> None:
        """rq cron enqueues with rq's default serializer (it has no other), so its jobs
        go to a queue of their own, served by a worker without the JSON serializer."""
        self._spawn("cron (rq)", [str(BIN / "rq"), "cron", "workers.cron"])
        # Corral's worker class, so the periodic jobs' results are counted for /metrics.
        command = [
            str(BIN / "rq"), "worker", "--worker-class", "workers.worker.CorralWorker", CRON_QUEUE
        ]  # fmt: skip
        self._spawn(f"cron-worker (rq, queue {CRON_QUEUE})", command, stop_timeout=30.0)

    def _spawn(self, name: str, command: list[str], stop_timeout: float = 10.0) -> Component:
        log_path = self.logs / f"{name.split()[0]}.log"  # "worker-1 (rq)" logs to worker-1.log
        return self._supervise(
            name,
            lambda again: Child(name, command, self.env, log_path, stop_timeout, append_log=again),
        )

    def _supervise(self, name: str, start: Callable[[bool], Child]) -> Component:
        component = Component(name, start, self.pids)
        self.stack.callback(component.stop)
        self.components.append(component)
        return component

    def _keep(self, server: Server) -> str:
        """Stop `server` with the rest, watch it while running; return its URL."""
        self.stack.callback(server.child.stop)
        server.child.record_pid(self.pids)
        self.servers.append(server.child)
        return server.url

    def _workers_registered(self) -> bool:
        import redis

        conn = redis.Redis.from_url(self.env["CORRAL_REDIS_URL"])
        try:
            # with the cron queue's, which starts later
            return bool(conn.scard("rq:workers") >= self.workers)
        finally:
            conn.close()

    # -- the local.json file ------------------------------------------------------------

    def _write_local_json(
        self,
        settings: Settings,
        operator_key: str,
        demo: Demo,
        docker_url: str | None,
        vm: VmDemo | None,
    ) -> None:
        path = self.local_json
        content = {
            "url": self.url,
            "operator_key": operator_key,
            "cluster_id": demo.cluster_id,
            "api_key": demo.api_key,
            "egg_id": demo.egg_id,
            "http_egg_id": demo.http_egg_id,
            "host_id": demo.host_id,
            "docker_host": docker_url,
            "vm_egg_id": vm.egg_id if vm else None,
            "vm_host_id": vm.host_id if vm else None,
            "vm_image": vm.image if vm else None,
            "vm_host_address": self.vm_host.ssh_address if self.vm_host else None,
            "redis_url": settings.redis_url,
            "dynamodb_endpoint": settings.dynamodb_endpoint,
            "table": settings.table_name,
        }
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # also when an older file was there with looser bits
        with os.fdopen(fd, "w") as out:
            json.dump(content, out, indent=2)
            out.write("\n")
        if not self.persist:
            # Its keys die with the in-memory table: do not leave them looking valid.
            self.stack.callback(path.unlink, missing_ok=True)

    def _stop_dockerd(self, dockerd: Dockerd) -> None:
        """Kept with the table (`--persist`), the containers stop with dockerd and the
        reconciler records them stopped; else they go."""
        if not self.persist:
            log.info("removed %d container(s)", dockerd.remove_all_containers())
        dockerd.stop(remove_containers=not self.persist)

    # -- running ------------------------------------------------------------------------

    def supervise(self) -> None:
        """Start again the components that exit; return when a server dies (Ctrl-C
        and SIGTERM arrive as Shutdown)."""
        while True:
            for child in self.servers:
                if not child.alive():
                    code = child.process.returncode
                    log.error("%s exited with %s:\n%s", child.name, code, child.log_tail())
                    return
            if self.dockerd is not None and not self.dockerd.alive():
                log.error("dockerd exited:\n%s", self.dockerd.log_tail())
                return
            for component in self.components:
                component.check()
            if self.served is not None:
                self.served.announce()
            time.sleep(0.5)


def print_banner(
    url: str,
    demo: Demo,
    docker_url: str | None,
    kept_in: Path | None,
    state_dir: Path,
    vm: VmDemo | None = None,
    vm_address: str | None = None,
) -> None:
    base = f"{url}{PUBLIC}"
    auth = '-H "Authorization: Bearer $CORRAL_KEY"'
    body = _compact({"name": "hello", "egg_id": demo.egg_id})
    if docker_url is not None:
        host = f"docker host:  {docker_url}   (docker -H {docker_url} ps)"
    else:
        host = "docker host:  NONE (dockerd did not start: see the warning above)"
    if vm is not None and vm_address is not None:
        vm_host = f"VM host:      {vm_address} (sshd in a network namespace; QEMU with TCG)"
    else:
        vm_host = "VM host:      NONE (QEMU, a kernel or root is missing: see the warning above)"
    if kept_in is not None:
        table = f"kept in {_short(kept_in)}/ (the next `make run PERSIST=1` goes on from it)"
    else:
        table = "in memory, gone when this stops (`make run PERSIST=1` keeps it)"
    lines = [
        "",
        f"Corral is running at {url}   (Ctrl-C stops everything)",
        f"  {host}",
        f"  {vm_host}",
        f"  logs:         {_short(state_dir / 'logs')}/",
        f"  table:        {table}",
        f"  local.json:   {_short(state_dir / 'local.json')} (operator key, cluster id, API key)",
        "",
        "The demo cluster's API key (shown once; also in .corral/local.json):",
        "",
        f"  export CORRAL_KEY={demo.api_key}",
        "",
        f"The dashboard: open {url}/ and paste that key (or the operator key of local.json).",
        "",
        "The command line (it reads .corral/local.json; `corral --help` says more):",
        "",
        "  .venv/bin/corral containers create hello --wait",
        "",
        "Or with curl, create a container:",
        "",
        f"  curl -s -X POST {base}/containers {auth} \\",
        f"    -H 'Content-Type: application/json' -d '{body}'",
        "",
        "Follow its operation (the operation.id of that answer):",
        "",
        f'  curl -s "{base}/operations/<operation id>/wait?timeout=25" {auth}',
        "",
        *_http_lines(base, auth, demo.http_egg_id),
    ]
    if vm is not None and vm_address is not None:
        lines += _vm_examples(url, demo, vm, state_dir)
    print("\n".join(lines), flush=True)


def _http_lines(base: str, auth: str, http_egg_id: str | None) -> list[str]:
    if http_egg_id is None:
        return []
    body = _compact({"name": "web", "egg_id": http_egg_id})
    return [
        "Or a web server of its /data folder on its allocated port (the `http` egg);",
        "once it runs, the address to open in a browser is printed here:",
        "",
        f"  curl -s -X POST {base}/containers {auth} \\",
        f"    -H 'Content-Type: application/json' -d '{body}'",
        "",
    ]


def _vm_examples(url: str, demo: Demo, vm: VmDemo, state_dir: Path) -> list[str]:
    """A tenant VM through the containers route, and an environment (003) through the
    operator's envs route, both on the demo cluster."""
    base = f"{url}{PUBLIC}"
    auth = '-H "Authorization: Bearer $CORRAL_KEY"'
    vm_body = _compact({"name": "hello-vm", "egg_id": vm.egg_id})
    local_json = _short(state_dir / "local.json")
    read_key = f'import json; print(json.load(open("{local_json}"))["operator_key"])'
    operator_auth = '-H "Authorization: Bearer $CORRAL_OPERATOR_KEY"'
    # 003's VM as its document writes it (2 vCPUs, 2048 MiB, 40960 MiB, port 80), on the
    # demo cluster and the VM host's image.
    env_body = _compact(
        {
            "id": "my-env",
            "cluster_id": demo.cluster_id,
            "owner": "alice",
            "ssh_keys": [],
            "vms": [
                {
                    "image": vm.image,
                    "engine": "qemu",
                    "cpu": 2,
                    "mem": 2048,
                    "disk": 40960,
                    "ports": [80],
                    "deny_outgoing": False,
                }
            ],
            "lifetime": 21600,
        }
    )
    return [
        "Create a VM (a busybox initramfs under QEMU; under TCG it boots in about 30 s):",
        "",
        f"  curl -s -X POST {base}/containers {auth} \\",
        f"    -H 'Content-Type: application/json' -d '{vm_body}'",
        "",
        'Once its status is running, its view\'s vm.address and vm.forwarded_ports["22"]',
        "say where its SSH port answers (the demo guest has no sshd: it greets",
        '"corral-guest-hello 22" there):',
        "",
        f"  curl -s {base}/containers/<container id> {auth}",
        '  busybox nc <vm.address> <vm.forwarded_ports["22"]>',
        "",
        "An environment (003's example: one VM), with the operator key:",
        "",
        f"  export CORRAL_OPERATOR_KEY=$(python3 -c '{read_key}')",
        f"  curl -s -X POST {url}{ADMIN}/envs {operator_auth} \\",
        f"    -H 'Content-Type: application/json' -d '{env_body}'",
        "",
        f"(003's own path {url}/api/envs takes the same body without cluster_id: the",
        "platform's default cluster, the demo cluster here.)",
        "",
    ]


class ServedUrls:
    """Prints where each running container of the demo cluster is reached (its
    primary allocation, as a URL) the first time it is seen running."""

    EVERY_S = 1.0

    def __init__(self, repo: Repository, cluster_id: str) -> None:
        self._repo = repo
        self._cluster_id = cluster_id
        self._shown: set[tuple[str, int]] = set()
        self._next = 0.0

    def announce(self) -> None:
        if time.monotonic() < self._next:
            return
        self._next = time.monotonic() + self.EVERY_S
        try:
            workloads = self._repo.workloads.in_cluster(self._cluster_id)
        except (ClientError, CorralError) as exc:  # a table hiccup must not stop the launcher
            log.debug("could not list the demo cluster's containers: %s", exc)
            return
        for workload in workloads:
            if workload.status != WorkloadStatus.RUNNING or not workload.allocations:
                continue
            primary = workload.allocations[0]
            if (workload.id, primary.port) in self._shown:
                continue
            self._shown.add((workload.id, primary.port))
            url = f"http://{primary.ip}:{primary.port}/"
            print(f"container {workload.name!r} ({workload.id}) runs: open {url}", flush=True)


def _compact(body: object) -> str:
    return json.dumps(body, separators=(",", ":"))


# -- small helpers -------------------------------------------------------------------


def _base_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "CORRAL_TABLE": TABLE,
            "CORRAL_QUEUE": QUEUE,
            # Backups go to a folder the API (downloads) and the workers share.
            "CORRAL_BACKUP_FOLDER": env.get("CORRAL_BACKUP_FOLDER", str(STATE_DIR / "backups")),
            # DynamoDB Local takes any credentials; boto3 needs some to sign with
            "AWS_ACCESS_KEY_ID": env.get("AWS_ACCESS_KEY_ID", "local"),
            "AWS_SECRET_ACCESS_KEY": env.get("AWS_SECRET_ACCESS_KEY", "local"),
            "AWS_DEFAULT_REGION": env.get("AWS_DEFAULT_REGION", "us-east-1"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    # 004's token exchange signs with it; a new one each run (tokens are short-lived).
    env.setdefault("CORRAL_TOKEN_SECRET", secrets.token_urlsafe(32))
    return env


def _local_secret_key(state_dir: Path) -> str:
    """make run's CORRAL_SECRET_KEY, made once and kept beside the table (PERSIST)."""
    path = state_dir / "secret_key"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(new_key() + "\n")
    return path.read_text().strip()


def _is_launcher(pid: int) -> bool:
    try:
        return b"devstack" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _dockerd_run_dir(state_dir: Path) -> Path:
    """Where the dockerd of the run in `state_dir` keeps its socket and pidfile: a
    fixed, short path (sockets are limited to 108 bytes), one per state directory."""
    if state_dir == STATE_DIR:
        return Path(f"/tmp/corral-{os.getuid()}")
    digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:8]
    return Path(f"/tmp/corral-{os.getuid()}-{digest}")


def _earlier_run(local_json: Path) -> tuple[str, Demo, VmDemo | None] | None:
    """The operator key, demo cluster and VM host of the run whose table was kept, from
    its local.json; None if there is none (a new one is seeded)."""
    try:
        earlier = json.loads(local_json.read_text())
        demo = Demo(
            egg_id=earlier["egg_id"],
            cluster_id=earlier["cluster_id"],
            api_key=earlier["api_key"],
            host_id=earlier["host_id"],
            http_egg_id=earlier.get("http_egg_id"),
        )
        vm = None
        if earlier.get("vm_host_id"):
            vm = VmDemo(earlier["vm_egg_id"], earlier["vm_host_id"], earlier["vm_image"])
        return str(earlier["operator_key"]), demo, vm
    except (OSError, ValueError, KeyError):
        return None


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
    parser.add_argument(
        "--persist",
        action="store_true",
        help=f"keep the table in {_short(STATE_DIR)}/table/ and go on from it next time",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="Corral worker processes (several jobs at once each)"
    )
    parser.add_argument(
        "--vm-images",
        type=Path,
        default=None,
        help="where the guest kernel and initramfs are built once (default STATE_DIR/vm-images)",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=STATE_DIR,
        help=f"where the run keeps its logs, pid files and state (default {_short(STATE_DIR)})",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s run: %(message)s", datefmt="%X")
    logging.getLogger("botocore").setLevel(logging.WARNING)
    os.environ.update(_base_env())  # for the boto3 client of this process
    for signum in STOP_SIGNALS:
        signal.signal(signum, _on_signal)
    code = 0
    stack = contextlib.ExitStack()
    try:
        launcher = Launcher(
            args.port,
            args.persist,
            stack,
            args.state_dir.resolve(),
            args.workers,
            args.vm_images.resolve() if args.vm_images else None,
        )
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
