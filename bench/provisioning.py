"""3. End-to-end provisioning: POST /containers → the operation succeeded (long-poll
on /operations/:id/wait) → the container runs on the dockerd, through gunicorn and a
real `rq worker` process (JSON serializer), against the raw docker SDK creating and
starting the same image with the same limits. Runs interleave, one at a time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from bench.report import Row, Section, median, ms, number, percentile, ratio, table
from bench.stack import Stack
from bench.world import CPU_CORES, RAM_MB, STOP_TIMEOUT, HttpApi, InProcessApi, World, seed
from devstack.image import IDLE_COMMAND
from infra.table.repository import Repository
from shared.runtime import runtime_name
from shared.settings import Settings

TITLE = "3. End-to-end provisioning latency"
CORRAL_APP = "handlers.asgi:get_app()"
MIB = 1024 * 1024
CPU_PERIOD_US = 100_000


# The user-defined bridge network the like-for-like raw containers join (see
# `raw_create_start`).
RAW_NETWORK = "bench-raw"


def raw_limits(api: Any, **more: Any) -> Any:
    """The host config Corral's docker driver gives a container of the bench egg."""
    return api.create_host_config(
        cpu_period=CPU_PERIOD_US,
        cpu_quota=int(CPU_CORES * 100) * 1000,
        mem_limit=RAM_MB * MIB,
        memswap_limit=RAM_MB * MIB,
        **more,
    )


def raw_network(docker: Any) -> str:
    """The id of the bench's user-defined bridge network for raw containers, made once."""
    api = docker.api
    found = [n for n in api.networks(names=[RAW_NETWORK]) if n.get("Name") == RAW_NETWORK]
    return str(found[0]["Id"] if found else api.create_network(RAW_NETWORK, driver="bridge")["Id"])


def raw_create_start(docker: Any, image: str, name: str, network: str | None = None) -> float:
    """Seconds to create and start one container with the raw SDK (low-level API,
    as the driver uses it). With `network` (an id), the container is made like
    Corral's: a named data volume created first and mounted, and the container on that
    user-defined bridge network (whose embedded DNS makes a start slower than on the
    default bridge) under an alias."""
    api = docker.api
    started = time.perf_counter()
    attached: dict[str, Any] = {}
    more: dict[str, Any] = {}
    if network is not None:
        api.create_volume(f"{name}-data")
        more = {"binds": {f"{name}-data": {"bind": "/data", "mode": "rw"}}, "network_mode": network}
        endpoint = api.create_endpoint_config(aliases=[name])
        attached = {"networking_config": api.create_networking_config({network: endpoint})}
    created = api.create_container(
        image,
        command=list(IDLE_COMMAND),
        name=name,
        labels={"bench": "raw"},
        stop_timeout=STOP_TIMEOUT,
        host_config=raw_limits(api, **more),
        **attached,
    )
    api.start(created["Id"])
    return time.perf_counter() - started


def job_times(redis: Any, job_id: str) -> tuple[datetime, datetime, datetime]:
    """(enqueued, started, ended) of an rq job, as the worker recorded them (UTC)."""
    from rq.job import Job
    from rq.serializers import JSONSerializer

    # The job records the operation's success in the table before rq records the job's
    # end, and a waiting client hears of the success at once: give rq a moment.
    deadline = time.monotonic() + 5
    while True:
        job = Job.fetch(job_id, connection=redis, serializer=JSONSerializer)
        if job.enqueued_at and job.started_at and job.ended_at:
            return _utc(job.enqueued_at), _utc(job.started_at), _utc(job.ended_at)
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job_id} has no timestamps (status {job.get_status()})")
        time.sleep(0.01)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def corral_provision(world: World, docker: Any, redis: Any, name: str) -> dict[str, float]:
    """One provisioning through Corral; its total and where the time went."""
    wall = time.time()
    started = time.perf_counter()
    container_id, operation_id = world.create(name)
    accepted = time.perf_counter() - started
    world.wait(operation_id)
    attrs = docker.api.inspect_container(runtime_name(container_id))
    total = time.perf_counter() - started
    if not attrs["State"]["Running"]:
        raise RuntimeError(f"container {container_id} succeeded but is {attrs['State']}")
    enqueued, job_started, job_ended = job_times(redis, operation_id)
    finished = wall + total
    return {
        "total": total,
        "accepted": accepted,
        "queued": (job_started - enqueued).total_seconds(),
        "job": (job_ended - job_started).total_seconds(),
        "after_job": finished - job_ended.timestamp(),
    }


class CountingDocker:
    """A DockerClient whose engine calls are counted (the driver's `client_factory`)."""

    calls = 0  # across every instance: a worker's threads each have their own driver

    def __init__(self, **kwargs: Any) -> None:
        import docker

        self._client = docker.DockerClient(**kwargs)
        self.api = self

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._client.api, name)
        if not callable(found) or (name.startswith("create_") and name.endswith("_config")):
            return found  # a request body built here, not an engine call

        def counted(*args: Any, **kwargs: Any) -> Any:
            CountingDocker.calls += 1
            return found(*args, **kwargs)

        return counted

    def close(self) -> None:
        self._client.close()


@dataclass
class WarmJobs:
    """Jobs run in this process with their context built once, by kind: seconds of each,
    and the engine and table calls each made."""

    seconds: dict[str, list[float]] = field(default_factory=dict)
    engine_calls: dict[str, list[int]] = field(default_factory=dict)
    table_calls: dict[str, list[int]] = field(default_factory=dict)

    def add(self, kind: str, seconds: float, engine: int, table_calls: int) -> None:
        self.seconds.setdefault(kind, []).append(seconds)
        self.engine_calls.setdefault(kind, []).append(engine)
        self.table_calls.setdefault(kind, []).append(table_calls)


def warm_job_runs(stack: Stack, settings: Settings, repo: Repository, world: World,
                  runs: int) -> WarmJobs:  # fmt: skip
    """The provision job alone, then a stop and a start of its container, each run in
    this process by rq's SimpleWorker with the worker context built once: what a job
    costs in a warm process, and the engine and table calls it makes. The containers
    are created through an in-process app whose queue only this process serves."""
    from dataclasses import replace

    from handlers.app import create_app
    from infra.drivers.docker.driver import DockerDriver
    from infra.drivers.factory import DriverFactory
    from infra.queue import JobQueue
    from services.deps import Deps
    from shared.models import DriverKind
    from workers import context

    quiet = replace(settings, queue_name="bench-unserved")
    redis = stack.redis()
    deps = Deps(repo=repo, jobs=JobQueue(redis, quiet), redis=redis, settings=quiet)
    local = replace(world, api=InProcessApi(create_app(deps)))
    drivers = DriverFactory(
        {DriverKind.DOCKER: lambda host: DockerDriver(host.address, client_factory=CountingDocker)}
    )
    ctx = context.WorkerContext(repo=repo, jobs=deps.jobs, drivers=drivers, settings=quiet)
    context.install(ctx)
    stats = repo.db.stats
    measured = WarmJobs()

    def run_job(kind: str, operation_id: str, kept: bool) -> None:
        from rq import SimpleWorker
        from rq.serializers import JSONSerializer

        stats.reset()
        CountingDocker.calls = 0
        worker = SimpleWorker([deps.jobs.queue], connection=redis, serializer=JSONSerializer)
        worker.work(burst=True, with_scheduler=False, logging_level="WARNING")
        engine, table_calls = CountingDocker.calls, sum(stats.calls.values())
        op = repo.operations.get(world.cluster_id, operation_id)
        if op.status.value != "succeeded":
            raise RuntimeError(f"warm {kind} {operation_id} ended {op.status.value}")
        if kept:  # the first of each warms the driver's connection
            _, started, ended = job_times(redis, operation_id)
            seconds = (ended - started).total_seconds()
            measured.add(kind, seconds, engine, table_calls)

    try:
        for index in range(runs + 1):
            container_id, operation_id = local.create(f"warm-{index}")
            run_job("provision", operation_id, kept=index > 0)
            for signal in ("stop", "start"):
                run_job(signal, local.power(container_id, signal), kept=index > 0)
    finally:
        context.install(None)
        ctx.drivers.close()
        redis.close()
    return measured


class Measured(NamedTuple):
    corral: list[dict[str, float]]
    raw: list[float]  # the raw SDK's create + start
    raw_networked: list[float]  # the same, made like Corral's (see `raw_create_start`)


def _measure(
    stack: Stack, settings: Settings, repo: Repository, runs: int, code: Path | None
) -> tuple[Measured, World]:
    """`runs` provisions through Corral (the API and one worker of checkout `code`,
    None: this one), interleaved with as many raw SDK create + start, plain and made
    like Corral's."""
    measured = Measured([], [], [])
    docker = stack.docker()
    redis = stack.redis()
    side = "before" if code else "now"
    try:
        network = raw_network(docker)
        with (
            stack.gunicorn(CORRAL_APP, stack.corral_env(settings), code=code) as served,
            stack.workers(settings, 1, code=code),
        ):
            world = seed(HttpApi(served.url), repo, stack.docker_url)
            corral_provision(world, docker, redis, f"warm-up-{side}")  # unmeasured
            raw_create_start(docker, stack.image, f"raw-warm-up-{side}")
            raw_create_start(docker, stack.image, f"raw-net-warm-up-{side}", network)
            for index in range(runs):
                measured.raw.append(raw_create_start(docker, stack.image, f"raw-{side}-{index}"))
                measured.raw_networked.append(
                    raw_create_start(docker, stack.image, f"raw-net-{side}-{index}", network)
                )
                measured.corral.append(
                    corral_provision(world, docker, redis, f"e2e-{side}-{index}")
                )
    finally:
        docker.close()
        redis.close()
    return measured, world


def run(stack: Stack, quick: bool) -> Section:
    runs = 5 if quick else 20
    measured: dict[str, Measured] = {}
    warm = WarmJobs()
    try:
        for label, code in stack.sides():
            settings = stack.settings("e2e")
            with stack.table(settings) as repo:
                measured[label], world = _measure(stack, settings, repo, runs, code)
                if code is None:
                    warm = warm_job_runs(stack, settings, repo, world, max(3, runs // 4))
    finally:
        stack.remove_containers()
        stack.flush_redis()
    corral, raw, raw_networked = measured["Corral"]
    totals = [c["total"] for c in corral]
    section = Section(
        TITLE,
        f"the raw docker SDK creating and starting the same image with the same limits "
        f"({CPU_CORES} CPU, {RAM_MB} MB), over the same socket; {runs} runs each, interleaved.",
    )
    section.rows = [
        Row("provision, p50", ms(median(totals)), ms(median(raw)),
            ratio(median(totals), median(raw))),
        Row("provision, p99", ms(percentile(totals, 99)), ms(percentile(raw, 99)),
            ratio(percentile(totals, 99), percentile(raw, 99))),
    ]  # fmt: skip
    section.rows.append(
        Row("provision, p50, against the raw SDK making it like Corral (volume, network)",
            ms(median(totals)), ms(median(raw_networked)),
            ratio(median(totals), median(raw_networked)))
    )  # fmt: skip
    if "before" in measured:
        then, then_raw, then_networked = measured["before"]
        then_totals = [c["total"] for c in then]
        section.rows += [
            Row("provision, p50, before (--compare-with)", ms(median(then_totals)),
                ms(median(then_raw)), ratio(median(then_totals), median(then_raw))),
            Row("provision, p50, before, against the raw SDK making it like Corral",
                ms(median(then_totals)), ms(median(then_networked)),
                ratio(median(then_totals), median(then_networked))),
            Row("the job alone, p50: now / before",
                ms(median([c["job"] for c in corral])), ms(median([c["job"] for c in then])),
                ratio(median([c["job"] for c in corral]), median([c["job"] for c in then]))),
        ]  # fmt: skip
    parts = [
        ("POST /containers answered 202", "accepted"),
        ("waiting in the queue (enqueued → job started)", "queued"),
        ("the job (started → ended, in the worker's long-lived process)", "job"),
        ("job ended → the client saw `succeeded` and inspected the container", "after_job"),
    ]
    section.details = [
        "Where Corral's time goes (medians over the runs; from rq's job timestamps):",
        "",
        *table(
            ["part", "p50"],
            [
                *([label, ms(median([c[key] for c in corral]))] for label, key in parts),
                ["for comparison: the same job in a warm process (context built once, "
                 f"no fork; {len(warm.seconds['provision'])} runs)",
                 ms(median(warm.seconds["provision"]))],
            ],
        ),
        "",
        "What each job asks of the engine and of the table (the same jobs, run in this "
        "process; calls per job, medians; the raw SDK's create + start is 2 engine calls, "
        "its stop or start 1):",
        "",
        *table(
            ["job", "engine calls", "table calls", "p50 (in-process)"],
            [
                [kind, number(median(warm.engine_calls[kind]), 0),
                 number(median(warm.table_calls[kind]), 0), ms(median(warm.seconds[kind]))]
                for kind in warm.seconds
            ],
        ),
    ]  # fmt: skip
    section.notes = [
        "One `rq worker --with-scheduler --worker-class workers.worker.CorralWorker` "
        "with the JSON serializer, as `make run` starts it: jobs run in its own process "
        "(up to CORRAL_WORKER_CONCURRENCY at once, one per thread), with the job's modules "
        "and its worker context (table client, Redis connection, docker client) made once, "
        "so the job's time should match the same job run in this process. With "
        "`--compare-with DIR`, the same runs go through DIR's API and worker too (`before`), "
        "each side against its own raw SDK runs taken beside it.",
        "The client long-polls /operations/:id/wait, woken by the job's Redis "
        "notification; then it inspects the container on the dockerd itself.",
        "The plain raw baseline starts its container on the default bridge. Corral's "
        "container joins its cluster's user-defined bridge network (isolation, names "
        "that resolve), whose embedded DNS makes the engine's start ~100 ms slower on "
        "this machine, and mounts a named data volume: the like-for-like row measures "
        "the raw SDK creating the volume and the container on a user-defined network, "
        "interleaved with the others.",
        "Engine and table calls are counted on the jobs run in the bench's process "
        "(a docker client that counts its requests, the repository's table call "
        "statistics); a worker process makes the same calls.",
        f"With {runs} samples, p99 is the slowest run.",
    ]
    return section
