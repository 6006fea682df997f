"""4. Power operations through Corral, against the raw docker SDK call.

Latency: restart, stop and start of one container through the API and an rq
worker, waiting on /operations/:id/wait, interleaved with the same SDK call on a
raw container of the same image and limits.

Worker throughput: N restart jobs queued at once (one per container: a container
takes one change at a time), then served by 1 and by 2 `rq worker` processes;
jobs/s from rq's own job timestamps (first start to last end), so worker start-up
is left out. Baseline: the same N restarts sent straight to the dockerd by 1 and 2
concurrent SDK clients.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from bench.provisioning import CORRAL_APP, job_times, raw_create_start, raw_network
from bench.report import Row, Section, median, ms, number, percentile, ratio, table
from bench.stack import Stack, cpu_seconds
from bench.world import STOP_TIMEOUT, HttpApi, World, seed
from infra.table.repository import Repository
from shared.runtime import runtime_name

TITLE = "4. Power operations and worker throughput"
SIGNALS = ("restart", "stop", "start")


def _raw_power(docker: Any, name: str, signal: str) -> float:
    api = docker.api
    started = time.perf_counter()
    if signal == "restart":
        api.restart(name, timeout=STOP_TIMEOUT)
    elif signal == "stop":
        api.stop(name, timeout=STOP_TIMEOUT)
    else:
        api.start(name)
    return time.perf_counter() - started


def _corral_power(world: World, container_id: str, signal: str) -> float:
    started = time.perf_counter()
    world.wait(world.power(container_id, signal))
    return time.perf_counter() - started


Samples = dict[str, dict[str, list[float]]]  # side -> signal -> seconds


def _latency(world: World, docker: Any, image: str, rounds: int) -> Samples:
    container_id, operation_id = world.create("power")
    world.wait(operation_id)
    raw_name = f"raw-power-{container_id}"
    raw_create_start(docker, image, raw_name)
    like_corral = f"raw-net-power-{container_id}"  # on a user-defined network, with a volume
    raw_create_start(docker, image, like_corral, raw_network(docker))
    samples: Samples = {"Corral": {}, "raw": {}, "raw like Corral": {}}
    for index in range(rounds + 1):  # the first round warms up and is not kept
        for signal in SIGNALS:
            raw = _raw_power(docker, raw_name, signal)
            raw_networked = _raw_power(docker, like_corral, signal)
            corral = _corral_power(world, container_id, signal)
            if index:
                samples["raw"].setdefault(signal, []).append(raw)
                samples["raw like Corral"].setdefault(signal, []).append(raw_networked)
                samples["Corral"].setdefault(signal, []).append(corral)
    return samples


def _provision_many(world: World, count: int) -> list[str]:
    """`count` running containers, provisioned concurrently by the workers running."""
    created = [world.create(f"busy-{index}") for index in range(count)]
    for _, operation_id in created:
        world.wait(operation_id)
    return [container_id for container_id, _ in created]


def _wait_jobs(redis: Any, job_ids: list[str], timeout: float) -> None:
    from rq.job import Job, JobStatus
    from rq.serializers import JSONSerializer

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = Job.fetch_many(job_ids, connection=redis, serializer=JSONSerializer)
        statuses = [job.get_status() if job else None for job in jobs]
        if all(s in (JobStatus.FINISHED, JobStatus.FAILED) for s in statuses):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{len(job_ids)} jobs not finished after {timeout:.0f} s")


def _served_rate(
    stack: Stack, settings: Any, repo: Repository, world: World, containers: list[str],
    workers: int, code: Path | None,
) -> dict[str, float]:  # fmt: skip
    """One restart per container served by `workers` workers: jobs/s from the first
    job's start to the last one's end, the median job, and the workers' CPU per job."""
    redis = stack.redis()
    try:
        with stack.workers(settings, workers, code=code) as procs:
            cpu_before = sum(cpu_seconds(proc.process.pid) for proc in procs)
            # The API queues faster than the workers serve, so they are busy from the
            # first job to the last.
            operations = [world.power(container_id, "restart") for container_id in containers]
            _wait_jobs(redis, operations, timeout=60 + 10 * len(operations))
            cpu = sum(cpu_seconds(proc.process.pid) for proc in procs) - cpu_before
        spans = [job_times(redis, op) for op in operations]
    finally:
        redis.close()
    for operation_id in operations:
        op = repo.operations.get(world.cluster_id, operation_id)
        if op.status.value != "succeeded":
            raise RuntimeError(f"restart {operation_id} ended {op.status.value}: {op.failure}")
    first: datetime = min(started for _, started, _ in spans)
    last: datetime = max(ended for _, _, ended in spans)
    return {
        "rate": len(operations) / (last - first).total_seconds(),
        "job": median([(ended - started).total_seconds() for _, started, ended in spans]),
        "cpu": cpu / len(operations),
    }


def _raw_rate(stack: Stack, names: list[str], clients: int) -> float:
    """Restart every container straight through the SDK, `clients` at a time."""
    shares = [names[i::clients] for i in range(clients)]
    docker_clients = [stack.docker() for _ in range(clients)]
    try:
        threads = [
            threading.Thread(
                target=lambda client, share: [_raw_power(client, n, "restart") for n in share],
                args=(client, share),
            )
            for client, share in zip(docker_clients, shares, strict=True)
        ]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return len(names) / (time.perf_counter() - started)
    finally:
        for client in docker_clients:
            client.close()


class Measured(NamedTuple):
    samples: Samples
    served: dict[int, dict[str, float]]  # workers -> rate, job, cpu
    raw_rates: dict[int, float]  # SDK clients -> restarts/s


def _measure(stack: Stack, rounds: int, jobs: int, code: Path | None) -> Measured:
    """Latency and throughput through the API and workers of checkout `code` (None:
    this one), on a table of their own, with the raw SDK figures taken beside them."""
    settings = stack.settings("power")
    docker = stack.docker()
    try:
        with (
            stack.table(settings) as repo,
            stack.gunicorn(CORRAL_APP, stack.corral_env(settings), code=code) as api_server,
        ):
            world = seed(HttpApi(api_server.url), repo, stack.docker_url)
            with stack.workers(settings, 1, code=code):
                samples = _latency(world, docker, stack.image, rounds)
            with stack.workers(settings, 2, code=code):
                containers = _provision_many(world, jobs)
            served = {
                workers: _served_rate(stack, settings, repo, world, containers, workers, code)
                for workers in (1, 2)
            }
            names = [runtime_name(container_id) for container_id in containers]
            raw_rates = {clients: _raw_rate(stack, names, clients) for clients in (1, 2)}
    finally:
        docker.close()
        stack.remove_containers()
        stack.flush_redis()
    return Measured(samples, served, raw_rates)


def run(stack: Stack, quick: bool) -> Section:
    rounds, jobs = (2, 10) if quick else (5, 30)
    measured = {label: _measure(stack, rounds, jobs, code) for label, code in stack.sides()}
    samples, served, raw_rates = measured["Corral"]
    rates: dict[tuple[str, int], float] = {}
    for workers in (1, 2):
        rates[("Corral", workers)] = served[workers]["rate"]
        rates[("raw", workers)] = raw_rates[workers]
    section = Section(
        TITLE,
        "the raw docker SDK call on a container of the same image and limits (latency: "
        f"{rounds} rounds, interleaved); the same {jobs} restarts sent straight to the "
        "dockerd by as many concurrent SDK clients as there are workers (throughput).",
    )
    for signal in SIGNALS:
        corral, raw = samples["Corral"][signal], samples["raw"][signal]
        section.rows += [
            Row(f"{signal}, p50", ms(median(corral)), ms(median(raw)),
                ratio(median(corral), median(raw))),
            Row(f"{signal}, p99", ms(percentile(corral, 99)), ms(percentile(raw, 99)),
                ratio(percentile(corral, 99), percentile(raw, 99))),
        ]  # fmt: skip
    for signal in SIGNALS:
        corral, raw = samples["Corral"][signal], samples["raw like Corral"][signal]
        section.rows.append(
            Row(f"{signal}, p50, against the raw SDK on a container made like Corral's",
                ms(median(corral)), ms(median(raw)), ratio(median(corral), median(raw)))
        )  # fmt: skip
    for workers in (1, 2):
        ours, base = rates[("Corral", workers)], rates[("raw", workers)]
        label = "1 worker / SDK client" if workers == 1 else f"{workers} workers / SDK clients"
        section.rows.append(
            Row(f"restart jobs/s, {label}", number(ours, 2), number(base, 2), ratio(ours, base))
        )
    if "before" in measured:
        then = measured["before"]
        for signal in SIGNALS:
            corral, raw = then.samples["Corral"][signal], then.samples["raw"][signal]
            section.rows.append(
                Row(f"{signal}, p50, before (--compare-with)", ms(median(corral)),
                    ms(median(raw)), ratio(median(corral), median(raw)))
            )  # fmt: skip
        ours, base = then.served[2]["rate"], then.raw_rates[2]
        section.rows.append(
            Row("restart jobs/s, 2 workers / SDK clients, before", number(ours, 2),
                number(base, 2), ratio(ours, base))
        )  # fmt: skip
    section.details = table(
        ["code", "workers", "jobs/s", "vs 1 worker", "median job (rq started → ended)",
         "workers' CPU per job"],
        [
            [label, str(w), number(m.served[w]["rate"], 2),
             ratio(m.served[w]["rate"], m.served[1]["rate"]), ms(m.served[w]["job"]),
             ms(m.served[w]["cpu"])]
            for label, m in measured.items()
            for w in (1, 2)
        ],
    )  # fmt: skip
    section.notes = [
        "Latency is from the POST to the long-poll answering `succeeded`; the raw call "
        "returns when the engine has done it. A restart or stop of the busybox shell is "
        "quick: it exits on SIGTERM (no stop timeout is waited out). The rows `made like "
        "Corral's` take their raw call on a container with a named volume on a "
        "user-defined bridge network, as Corral's is (see 3.): its start is slower.",
        f"Throughput: {jobs} restart jobs, one per container (a container takes one change "
        "at a time), queued through the API as fast as it answers while the workers serve "
        "them. Each worker runs up to CORRAL_WORKER_CONCURRENCY (4) jobs at once in its own "
        "process, with their context made once (see 3.); the workers' CPU per job is what "
        "a job costs them. Everything (the dockerd, Redis, the table server, the API, the "
        "workers) shares the same 2 CPUs. With `--compare-with DIR`, the whole section "
        "runs again through DIR's API and workers (`before`), on a table of its own.",
        f"With {rounds} samples, p99 is the slowest run.",
    ]
    return section
