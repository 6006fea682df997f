"""8. Fleet scale: what a request reads on a large fleet against a small one.

Two fleets, each in a fresh table: hosts registered and running workloads loaded
straight into it with every counter set (bench/fleet.py), the app in this process.
For each: tenant `POST /containers` and `GET /containers/:id` (latency and items read
per request), and the operator's `/api/v1/status`, `/api/v1/stats` and cluster view
(items read per call). The rows put the large fleet beside the small one: the goal
is the same items and about the same latency. The sweep's cost by due workloads is
section 5's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bench import fleet
from bench.meter import TableMeter
from bench.report import Row, Section, median, ms, number, percentile, ratio, table
from bench.stack import Stack
from bench.world import ADMIN, BIG_PLAN, InProcessApi, expect, seed
from handlers.app import create_app
from infra.queue import JobQueue
from services.deps import Deps
from shared.capacity import Resources

TITLE = "8. Fleet scale: reads follow the request, not the fleet"
SAMPLES = 30
HEADROOM = Resources(cpu_centi=10_000, ram_mb=1_000_000, storage_mb=10_000_000)


def _one_fleet(stack: Stack, hosts: int, workloads: int) -> dict[str, Any]:
    settings = stack.settings(f"scale-{hosts}")
    with stack.table(settings) as repo:
        redis = stack.redis()
        deps = Deps(repo=repo, jobs=JobQueue(redis, settings), redis=redis, settings=settings)
        api = InProcessApi(create_app(deps))
        world = seed(api, repo, stack.docker_url)
        plan = BIG_PLAN | {"containers": workloads + 3 * SAMPLES}
        path = f"{ADMIN}/clusters/{world.cluster_id}"
        expect(api, "PATCH", path, world.operator_key, {"plan": plan}, 200)
        per_host = workloads // hosts
        capacity = fleet.times(fleet.WORKLOAD, per_host) + HEADROOM
        started = time.perf_counter()
        registered = fleet.register(repo, hosts, capacity)
        loaded = fleet.load(repo, world.cluster_id, world.egg_id, registered, per_host)
        load_s = time.perf_counter() - started
        some = repo.workloads.on_host(registered[0].id)[0].id
        meter = TableMeter(repo.db.client)

        def measure(call: Callable[[], object], repeats: int) -> tuple[list[float], float]:
            times, items = [], 0
            for _ in range(repeats):
                meter.reset()
                started = time.perf_counter()
                call()
                times.append(time.perf_counter() - started)
                items += meter.reading.items_read
            return times, items / repeats

        try:
            world.create("warm")
            counter = iter(range(SAMPLES))
            create = measure(lambda: world.create(f"c{next(counter)}"), SAMPLES)
            get = measure(lambda: world.tenant("GET", f"/containers/{some}"), SAMPLES)
            views = {
                name: measure(_get(api, view_path, world.operator_key), 3)
                for name, view_path in (
                    ("/api/v1/status", f"{ADMIN}/status"),
                    ("/api/v1/stats", f"{ADMIN}/stats"),
                    ("cluster view", path),
                )
            }
        finally:
            redis.close()
            stack.flush_redis()
    return {
        "hosts": hosts + 1,  # and the world's own
        "workloads": loaded,
        "load_s": load_s,
        "create": create,
        "get": get,
        "views": views,
    }


def _get(api: InProcessApi, path: str, key: str) -> Callable[[], object]:
    return lambda: expect(api, "GET", path, key, None, 200)


def run(stack: Stack, quick: bool) -> Section:
    # A plan allows at most 100,000 containers: the large fleet is 99,000 and the creates.
    small_size, large_size = (
        ((10, 1_000), (100, 10_000)) if quick else ((10, 1_000), (1_000, 99_000))
    )
    small, large = _one_fleet(stack, *small_size), _one_fleet(stack, *large_size)
    section = Section(
        TITLE,
        f"the same requests on a fleet of {small['hosts']} hosts and {small['workloads']:,} "
        f"workloads; Corral: {large['hosts']:,} hosts and {large['workloads']:,} workloads.",
    )
    for name in ("create", "get"):
        label = "POST /containers" if name == "create" else "GET /containers/:id"
        (big_t, big_items), (small_t, small_items) = large[name], small[name]
        section.rows += [
            Row(f"{label}: p50", ms(median(big_t)), ms(median(small_t)),
                ratio(median(big_t), median(small_t))),
            Row(f"{label}: p99", ms(percentile(big_t, 99)), ms(percentile(small_t, 99)),
                ratio(percentile(big_t, 99), percentile(small_t, 99))),
            Row(f"{label}: items read", number(big_items), number(small_items),
                ratio(big_items, small_items)),
        ]  # fmt: skip
    for view, (_, big_items) in large["views"].items():
        _, small_items = small["views"][view]
        section.rows.append(
            Row(f"{view}: items read", number(big_items), number(small_items),
                ratio(big_items, small_items))
        )  # fmt: skip
    section.details = table(
        ["fleet", "loading", "create: items", "GET: items", "status: items", "stats: items",
         "list_hosts() a create read before"],
        [
            [f"{r['hosts']:,} hosts / {r['workloads']:,}", f"{r['load_s']:.1f} s",
             number(r["create"][1]), number(r["get"][1]),
             number(r["views"]["/api/v1/status"][1]), number(r["views"]["/api/v1/stats"][1]),
             f"{r['hosts']:,}"]
            for r in (small, large)
        ],
    )  # fmt: skip
    section.notes = [
        "A create reads the cluster and the egg (one BatchGetItem), the placement summary "
        "(one BatchGetItem of at most 16 shard items, fewer on a small fleet where some "
        "shards hold no host yet), the chosen host's held ports and the caller's key.",
        "/api/v1/status and /api/v1/stats list the hosts (their items grow with the "
        "hosts) and count the workloads from counters: no workload item is read.",
        "Reconcile and collection rounds are one job per host (workers/fleet.py) and run "
        "against the simulated engine (devstack/sim_engine.py, tests/functional/"
        "test_sim_engine.py); their wall time at 1,000 hosts is not measured here yet.",
        "`--quick`: 100 hosts / 10,000 workloads as the large fleet.",
    ]
    return section
