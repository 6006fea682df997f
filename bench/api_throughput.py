"""1. API throughput and latency under gunicorn, against a bare Falcon app.

Corral's app and the bare app (bench/bare_app.py) run side by side under the same
gunicorn.conf.py; the same closed-loop load (bench/loadgen.py) is sent to each in
turn. No rq worker runs, so every POST leaves a queued job and a provisioning
container and nothing touches the dockerd; the cluster and host are big enough
that capacity never runs out.
"""

from __future__ import annotations

import contextlib
import json
import os
import runpy
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.loadgen import Load, LoadGenerator, LoadResult, merged
from bench.report import TIMES, Row, Section, ms, number, ratio, table
from bench.stack import Stack, cpu_seconds
from bench.world import PUBLIC, HttpApi, World, seed
from devstack.processes import REPO
from infra.jobs import RUN_OPERATION, Lane
from infra.queue import FAILED_KEPT_SECONDS, RETRY_INTERVALS
from infra.table import schema
from infra.table.repository import Repository
from shared.settings import Settings

TITLE = "1. API throughput and latency (gunicorn, loopback)"
CORRAL_APP = "handlers.asgi:get_app()"
BARE_APP = "bench.bare_app:served"
FLOOR_APP = "bench.floor_app:create_app()"
# (figure, how it is shown, LoadResult's attribute), in the floor table.
FIGURES: tuple[tuple[str, Callable[[float], str], str], ...] = (
    ("requests/s", number, "rate"),
    ("p50", ms, "p50"),
    ("p99", ms, "p99"),
)
BEFORE = "before"  # the app of `python -m bench --compare-with CHECKOUT`
# Corral / floor that issue 13 aims at, per endpoint (requests/s).
GOALS = {"GET /containers/:id": 0.8, "POST /containers": 0.7}
PROCESSES, THREADS = 2, 8
BARE_FACTOR = 5
ROUNDS = 6
# Each app's warm-up, as a share of its measured requests: the table server's JIT keeps
# getting faster over the first few thousand calls of a kind (a GetItem cost it ~2.5 ms
# of CPU at first, ~0.5 ms once warm), so a short warm-up left the first app measured
# on a colder table than the others.
WARM_UP_SHARE = 0.5
# What each created container asks for: the egg's minimum, so that the bench cluster
# (the API's largest plan, 1,024 cores) holds every create of the run, the floor's too
# (its transaction reserves on the same cluster).
SMALLEST = {"cpu_cores": 0.1, "ram_mb": 16}


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
            body={"name": "load", "egg_id": egg_id, **SMALLEST},
            unique_field="name",
            expect_status=202,
        ),
    }


def _floor_spec(
    repo: Repository, settings: Settings, world: World, container_id: str, operation_id: str
) -> dict[str, Any]:
    """What bench/floor_app.py sends: the transaction Corral's stores build for the
    probe container as it was created, and the job Corral enqueued for it."""
    workload = repo.workloads.get(world.cluster_id, container_id)
    operation = repo.operations.get(world.cluster_id, operation_id)
    cluster, host = repo.clusters.get(world.cluster_id), repo.hosts.get(world.host_id)
    # The probe's counters were raised by its own creation; `reserve` conditions on the
    # plan and the capacity only, so the counters as they are now do not matter.
    entries = repo.create_workload_entries(workload, operation, cluster, host)
    return {
        "transact": [entry.request for entry in entries],
        "workload_id": container_id,
        "operation_id": operation_id,
        "cluster_id": world.cluster_id,
        "workload_key": {
            "pk": schema.cluster_pk(world.cluster_id),
            "sk_prefix": schema.workload_sk(""),
        },
        "job": {
            "queue": Lane.OPERATIONS.queue_name(settings),
            "function": RUN_OPERATION.function,
            "retry": RETRY_INTERVALS,
            "timeout": settings.job_timeout_seconds,
            "failure_ttl": FAILED_KEPT_SECONDS,
        },
    }


def _gunicorn_settings() -> tuple[int, int]:
    """(worker processes, threads per process) that gunicorn.conf.py and the settings
    give on this machine (the threads of the pool behind the asgi worker)."""
    conf = runpy.run_path(str(REPO / "gunicorn.conf.py"))
    return int(conf["workers"]), Settings.from_env().web_threads


def _share(cpu: float, seconds: float) -> str:
    """CPU time as a share of one core over the run."""
    return f"{cpu / seconds:.0%} of a core" if seconds else "n/a"


def _measure(
    stack: Stack,
    generator: LoadGenerator,
    counts: dict[str, int],
    targets: dict[str, tuple[dict[str, Load], int]],
    results: dict[tuple[str, str], LoadResult],
    busy: dict[tuple[str, str], tuple[float, float]],
) -> None:
    """Each load on every app in ROUNDS interleaved rounds, each round starting with
    the next app in turn, after a warm-up of every app: the table server's JIT warming
    up and the machine's other work fall on all apps alike."""
    sides = list(targets)
    for name, count in counts.items():
        parts: dict[str, list[LoadResult]] = {side: [] for side in targets}
        cpu = dict.fromkeys(targets, (0.0, 0.0))
        for side, (loads, _) in targets.items():
            warm_up = int(_total(count, side) * WARM_UP_SHARE)
            generator.run(loads[name], max(warm_up, generator.clients))
        for round_number in range(ROUNDS):
            turn = round_number % len(sides)
            for side in sides[turn:] + sides[:turn]:
                loads, pid = targets[side]
                before = (cpu_seconds(pid), cpu_seconds(stack.table_pid))
                parts[side].append(generator.run(loads[name], _total(count, side) // ROUNDS))
                cpu[side] = (
                    cpu[side][0] + cpu_seconds(pid) - before[0],
                    cpu[side][1] + cpu_seconds(stack.table_pid) - before[1],
                )
        for side in targets:
            results[(name, side)] = merged(parts[side])
            busy[(name, side)] = cpu[side]


def _total(count: int, side: str) -> int:
    # The bare app is fast: more requests, for a span long enough to time.
    return count * BARE_FACTOR if side == "bare" else count


def run(stack: Stack, quick: bool) -> Section:
    counts = (
        {"GET /containers/:id": 300, "POST /containers": 100}
        if quick
        else {
            "GET /containers/:id": 3000,
            "POST /containers": 600,
        }
    )
    section = Section(
        TITLE,
        "a bare Falcon app returning fixed JSON on the same paths, same gunicorn.conf.py "
        f"({PROCESSES} client processes {TIMES} {THREADS} threads, keep-alive, closed loop). "
        "The floor (second table) makes only each endpoint's irreducible calls "
        "(bench/floor_app.py).",
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
            probe = world.tenant(
                "POST", "/containers", {"name": "probe", "egg_id": world.egg_id, **SMALLEST}, 202
            )
            container_id, operation_id = probe["container"]["id"], probe["operation"]["id"]
            api.close()
            spec_path = Path(stack.logs / "floor-spec.json")
            spec = _floor_spec(repo, settings, world, container_id, operation_id)
            spec_path.write_text(json.dumps(spec))
            floor_env = stack.corral_env(settings) | {"FLOOR_SPEC": str(spec_path)}
            with contextlib.ExitStack() as more:
                floor = more.enter_context(stack.gunicorn(FLOOR_APP, floor_env))
                targets = {
                    "Corral": (_loads(corral.url, world.tenant_key, container_id, world.egg_id),
                               corral.pid),
                    "floor": (_loads(floor.url, None, container_id, world.egg_id), floor.pid),
                    "bare": (_loads(bare.url, None, container_id, world.egg_id), bare.pid),
                }  # fmt: skip
                if stack.compare_with is not None:
                    before = more.enter_context(
                        stack.gunicorn(
                            CORRAL_APP, stack.corral_env(settings), code=stack.compare_with
                        )
                    )
                    targets[BEFORE] = (
                        _loads(before.url, world.tenant_key, container_id, world.egg_id),
                        before.pid,
                    )
                _measure(stack, generator, counts, targets, results, busy)
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
    compared = stack.compare_with is not None
    floor_rows = []
    for name in counts:
        ours, least = results[(name, "Corral")], results[(name, "floor")]
        old = results.get((name, BEFORE))
        for figure, show, attribute in FIGURES:
            mine, least_value = getattr(ours, attribute), getattr(least, attribute)
            goal = f"{GOALS[name]}{TIMES} or more" if attribute == "rate" else ""
            row = [
                f"{name}: {figure}",
                show(mine),
                show(least_value),
                ratio(mine, least_value),
                goal,
            ]
            if old is not None:
                old_value = getattr(old, attribute)
                row += [show(old_value), ratio(old_value, least_value)]
            floor_rows.append(row)
    header = ["figure", "Corral", "floor", "Corral / floor", "goal"]
    if compared:
        header += [BEFORE, f"{BEFORE} / floor"]
    section.details = [
        *table(header, floor_rows),
        "",
        *table(
        ["load", "app", "requests", "errors", "statuses", "seconds",
         "gunicorn CPU", "table server CPU"],
        [
            [name, side, str(r.requests), str(r.errors),
             ", ".join(f"{s}: {n}" for s, n in sorted(r.statuses.items())), f"{r.seconds:.1f}",
             _share(busy[(name, side)][0], r.seconds), _share(busy[(name, side)][1], r.seconds)]
            for (name, side), r in results.items()
        ],
        ),
    ]  # fmt: skip
    workers, threads = _gunicorn_settings()
    cores = len(os.sched_getaffinity(0))
    section.notes = [
        *(
            [
                f"`{BEFORE}` is Corral as checked out in {stack.compare_with} (`--compare-with`), "
                "served the same way in the same run against the same servers and table."
            ]
            if compared
            else []
        ),
        f"The bare app gets {BARE_FACTOR} times as many requests as Corral (it answers "
        "that much faster), so that its runs last long enough to time.",
        f"Each load runs on every app in {ROUNDS} interleaved rounds, each round started by "
        f"the next app in turn, after a warm-up of each ({WARM_UP_SHARE:.0%} of its "
        "measured requests), summed: the table server's JIT warming up (a GetItem costs it "
        "~5 times as much CPU at first as once warm) and the machine's other work fall on "
        "all apps alike.",
        "Closed loop: each of the 16 clients sends its next request when the previous one "
        "answered, so requests/s is what the server sustains at that concurrency and p50/p99 "
        "include queueing behind the other clients.",
        f"The load generator, gunicorn ({workers} processes {TIMES} {threads} threads, "
        f"from gunicorn.conf.py), Redis and the table server all share the machine's "
        f"{cores} CPUs: Corral's figure is the whole local stack's, the bare app's mostly "
        "gunicorn's and the client's. The CPU columns are each server's CPU time over the "
        "run, as a share of one core.",
        "The floor (bench/floor_app.py) is a bare Falcon app under the same gunicorn "
        "settings, with the same boto3 client (`make_client`) and Redis client, against "
        "the same table server and Redis: GET makes one GetItem; POST parses the body, "
        "sends the very TransactWriteItems Corral's stores build (workload, operation, "
        "both counters under their conditions; fresh ids each time) and makes one RQ "
        "enqueue with Corral's options. No authentication, validation or models.",
        "Every Corral request reads the table through the local table server (DynamoDB "
        "Local, a JVM of its own on the same CPUs; POST makes the transaction, its "
        "event numbers taken from Redis, after a batch read of the cluster, the egg and "
        "the placement sample unless its process read them for a create in the last "
        "second, as it mostly has under this load; see 2.). "
        "Its CPU time is the table server's column.",
    ]
    return section
