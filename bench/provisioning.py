"""3. End-to-end provisioning: POST /containers → the operation succeeded (long-poll
on /operations/:id/wait) → the container runs on the dockerd, through gunicorn and a
real `rq worker` process (JSON serializer), against the raw docker SDK creating and
starting the same image with the same limits. Runs interleave, one at a time.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.report import Row, Section, median, ms, percentile, ratio, table
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


def raw_limits(api: Any) -> Any:
    """The host config Corral's docker driver gives a container of the bench egg."""
    return api.create_host_config(
        cpu_period=CPU_PERIOD_US,
        cpu_quota=int(CPU_CORES * 100) * 1000,
        mem_limit=RAM_MB * MIB,
        memswap_limit=RAM_MB * MIB,
    )


def raw_create_start(docker: Any, image: str, name: str) -> float:
    """Seconds to create and start one container with the raw SDK (low-level API,
    as the driver uses it)."""
    api = docker.api
    started = time.perf_counter()
    created = api.create_container(
        image,
        command=list(IDLE_COMMAND),
        name=name,
        labels={"bench": "raw"},
        stop_timeout=STOP_TIMEOUT,
        host_config=raw_limits(api),
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


def warm_job_runs(stack: Stack, settings: Settings, repo: Repository, world: World,
                  runs: int) -> list[float]:  # fmt: skip
    """The provision job alone, run in this process with its context built once: what
    a job costs without rq's fork and without building the context each time. The
    containers are created through an in-process app whose queue no worker serves."""
    from dataclasses import replace

    from handlers.app import create_app
    from infra.drivers.factory import DriverFactory
    from infra.queue import JobQueue
    from services.deps import Deps
    from workers import context
    from workers.jobs import run_operation

    quiet = replace(settings, queue_name="bench-unserved")
    redis = stack.redis()
    deps = Deps(repo=repo, jobs=JobQueue(redis, quiet), redis=redis, settings=quiet)
    local = replace(world, api=InProcessApi(create_app(deps)))
    ctx = context.WorkerContext(repo=repo, jobs=deps.jobs, drivers=DriverFactory(), settings=quiet)
    context.install(ctx)
    times: list[float] = []
    try:
        for index in range(runs + 1):
            _, operation_id = local.create(f"warm-{index}")
            started = time.perf_counter()
            if run_operation(world.cluster_id, operation_id) != "succeeded":
                raise RuntimeError(f"warm provision {operation_id} did not succeed")
            if index:  # the first one warms the driver's connection
                times.append(time.perf_counter() - started)
    finally:
        context.install(None)
        ctx.drivers.close()
        redis.close()
    return times


def _measure(
    stack: Stack, settings: Settings, repo: Repository, runs: int, code: Path | None
) -> tuple[list[dict[str, float]], list[float], World]:
    """`runs` provisions through Corral (the API and one worker of checkout `code`,
    None: this one), interleaved with as many raw SDK create + start."""
    corral: list[dict[str, float]] = []
    raw: list[float] = []
    docker = stack.docker()
    redis = stack.redis()
    side = "before" if code else "now"
    try:
        with (
            stack.gunicorn(CORRAL_APP, stack.corral_env(settings), code=code) as served,
            stack.workers(settings, 1, code=code),
        ):
            world = seed(HttpApi(served.url), repo, stack.docker_url)
            corral_provision(world, docker, redis, f"warm-up-{side}")  # unmeasured
            raw_create_start(docker, stack.image, f"raw-warm-up-{side}")
            for index in range(runs):
                raw.append(raw_create_start(docker, stack.image, f"raw-{side}-{index}"))
                corral.append(corral_provision(world, docker, redis, f"e2e-{side}-{index}"))
    finally:
        docker.close()
        redis.close()
    return corral, raw, world


def run(stack: Stack, quick: bool) -> Section:
    runs = 5 if quick else 20
    measured: dict[str, tuple[list[dict[str, float]], list[float]]] = {}
    warm: list[float] = []
    try:
        for label, code in stack.sides():
            settings = stack.settings("e2e")
            with stack.table(settings) as repo:
                corral, raw, world = _measure(stack, settings, repo, runs, code)
                measured[label] = (corral, raw)
                if code is None:
                    warm = warm_job_runs(stack, settings, repo, world, max(3, runs // 4))
    finally:
        stack.remove_containers()
        stack.flush_redis()
    corral, raw = measured["Corral"]
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
    if "before" in measured:
        then, then_raw = measured["before"]
        then_totals = [c["total"] for c in then]
        section.rows += [
            Row("provision, p50, before (--compare-with)", ms(median(then_totals)),
                ms(median(then_raw)), ratio(median(then_totals), median(then_raw))),
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
                 f"no fork; {len(warm)} runs)", ms(median(warm))],
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
        f"With {runs} samples, p99 is the slowest run.",
    ]
    return section
