"""1. API throughput and latency under gunicorn, against a bare Falcon app.

Corral's app and the bare app (bench/bare_app.py) run side by side under the same
gunicorn.conf.py; the same closed-loop load (bench/loadgen.py) is sent to each in
turn. No rq worker runs, so every POST leaves a queued job and a provisioning
container and nothing touches the dockerd; the cluster and host are big enough
that capacity never runs out.
"""

from __future__ import annotations

import os
import runpy
import urllib.parse

from bench.loadgen import Load, LoadGenerator, LoadResult
from bench.report import TIMES, Row, Section, ms, number, ratio, table
from bench.stack import Stack, cpu_seconds
from bench.world import PUBLIC, HttpApi, seed
from devstack.processes import REPO

TITLE = "1. API throughput and latency (gunicorn, loopback)"
CORRAL_APP = "handlers.asgi:get_app()"
BARE_APP = "bench.bare_app:served"
PROCESSES, THREADS = 2, 8
BARE_FACTOR = 5


def _loads(url: str, key: str | None, container_id: str, egg_id: str) -> dict[str, Load]:
    parsed = urllib.parse.urlsplit(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    auth = {"Authorization": f"Bearer {key}"} if key else {}
    return {
        "GET /containers/:id": Load(host, port, "GET", f"{PUBLIC}/containers/{container_id}", auth),
        "POST /containers": Load(
            host,
            port,
            "POST",
            f"{PUBLIC}/containers",
            auth | {"Content-Type": "application/json"},
            body={"name": "load", "egg_id": egg_id},
            unique_field="name",
            expect_status=202,
        ),
    }


def _gunicorn_settings() -> tuple[int, int]:
    """(worker processes, threads) that gunicorn.conf.py gives on this machine."""
    conf = runpy.run_path(str(REPO / "gunicorn.conf.py"))
    return int(conf["workers"]), int(conf["threads"])


def _share(cpu: float, seconds: float) -> str:
    """CPU time as a share of one core over the run."""
    return f"{cpu / seconds:.0%} of a core" if seconds else "n/a"


def run(stack: Stack, quick: bool) -> Section:
    counts = (
        {"GET /containers/:id": 300, "POST /containers": 100}
        if quick
        else {
            "GET /containers/:id": 1500,
            "POST /containers": 250,
        }
    )
    section = Section(
        TITLE,
        "a bare Falcon app returning fixed JSON on the same paths, same gunicorn.conf.py "
        f"({PROCESSES} client processes {TIMES} {THREADS} threads, keep-alive, closed loop).",
    )
    settings = stack.settings("api")
    results: dict[tuple[str, str], LoadResult] = {}
    busy: dict[tuple[str, str], tuple[float, float]] = {}  # CPU s of gunicorn, of the table server
    generator = LoadGenerator(PROCESSES, THREADS)
    try:
        with (
            stack.table(settings) as repo,
            stack.gunicorn(CORRAL_APP, stack.corral_env(settings)) as corral,
            stack.gunicorn(BARE_APP) as bare,
        ):
            api = HttpApi(corral.url)
            world = seed(api, repo, stack.docker_url)
            container_id, _ = world.create("probe")
            api.close()
            targets = {
                "Corral": (_loads(corral.url, world.tenant_key, container_id, world.egg_id),
                           corral.pid),
                "bare": (_loads(bare.url, None, container_id, world.egg_id), bare.pid),
            }  # fmt: skip
            for name, count in counts.items():
                for side, (loads, pid) in targets.items():
                    # The bare app is fast: more requests, for a span long enough to time.
                    total = count * BARE_FACTOR if side == "bare" else count
                    generator.run(loads[name], max(total // 10, generator.clients))  # warm-up
                    before = (cpu_seconds(pid), cpu_seconds(stack.table_pid))
                    results[(name, side)] = generator.run(loads[name], total)
                    busy[(name, side)] = (
                        cpu_seconds(pid) - before[0],
                        cpu_seconds(stack.table_pid) - before[1],
                    )
    finally:
        generator.close()
        stack.flush_redis()  # the POSTs' queued jobs
    for name in counts:
        ours, base = results[(name, "Corral")], results[(name, "bare")]
        section.rows += [
            Row(f"{name}: requests/s", number(ours.rate), number(base.rate),
                ratio(ours.rate, base.rate)),
            Row(f"{name}: p50", ms(ours.p50), ms(base.p50), ratio(ours.p50, base.p50)),
            Row(f"{name}: p99", ms(ours.p99), ms(base.p99), ratio(ours.p99, base.p99)),
        ]  # fmt: skip
    section.details = table(
        ["load", "app", "requests", "errors", "statuses", "seconds",
         "gunicorn CPU", "table server CPU"],
        [
            [name, side, str(r.requests), str(r.errors),
             ", ".join(f"{s}: {n}" for s, n in sorted(r.statuses.items())), f"{r.seconds:.1f}",
             _share(busy[(name, side)][0], r.seconds), _share(busy[(name, side)][1], r.seconds)]
            for (name, side), r in results.items()
        ],
    )  # fmt: skip
    workers, threads = _gunicorn_settings()
    cores = len(os.sched_getaffinity(0))
    section.notes = [
        f"The bare app gets {BARE_FACTOR} times as many requests as Corral (it answers "
        "that much faster), so that its runs last long enough to time.",
        "Closed loop: each of the 16 clients sends its next request when the previous one "
        "answered, so requests/s is what the server sustains at that concurrency and p50/p99 "
        "include queueing behind the other clients.",
        f"The load generator, gunicorn ({workers} processes {TIMES} {threads} threads, "
        f"from gunicorn.conf.py), Redis and the table server all share the machine's "
        f"{cores} CPUs: Corral's figure is the whole local stack's, the bare app's mostly "
        "gunicorn's and the client's. The CPU columns are each server's CPU time over the "
        "run, as a share of one core.",
        "Every Corral request reads the table through the local table server (DynamoDB "
        "Local, a JVM of its own on the same CPUs; POST makes 4 table calls, one a "
        "transaction; see 2.). Its CPU time is the table server's column.",
    ]
    return section
