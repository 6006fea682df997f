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

import gc
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from bench import fleet
from bench.meter import TableMeter
from bench.report import Row, Section, median, ms, number, percentile, ratio, table
from bench.stack import Stack
from bench.world import ADMIN, BIG_PLAN, InProcessApi, World, expect, seed
from devstack.sim_engine import SimulatedContainer, SimulatedEngine
from handlers.app import create_app
from infra.drivers.factory import DriverFactory
from infra.queue import JobQueue
from infra.table import schema
from infra.table.placement import OCCUPIED_KEY, PLACEMENT_PK, shard_sk
from infra.table.repository import Repository
from services.deps import Deps
from shared.capacity import Resources
from shared.models import Operation, Workload
from shared.runtime import LABEL_CLUSTER, LABEL_MANAGED, LABEL_WORKLOAD
from workers import context
from workers.collector import collect_one_host
from workers.jobs import run_operation
from workers.reconcile import reconcile_one_host

TITLE = "8. Fleet scale: reads follow the request, not the fleet"
# Creates and GETs timed on each fleet (30 of each gave p50s that moved by 40% from run
# to run with the same items read). The creates are bounded by the plan's CPU: the
# large fleet's 99,000 workloads hold 990 of its 1,024 cores.
SAMPLES = 50
GET_SAMPLES = 200
# Creates carried out end to end: the request, then its provision by a worker (in this
# process) on the simulated host placement chose.
END_TO_END_SAMPLES = 10
# Simulated hosts: each engine call waits this long; one reconcile and one collection
# round are measured on this many of them (the failing ones among them).
ENGINE_LATENCY_S = 0.002
ROUND_HOSTS = 30
HEADROOM = Resources(cpu_centi=10_000, ram_mb=1_000_000, storage_mb=10_000_000)


BARE_CALLS = ("GetItem", "BatchGetItem of 4 summary shards", "TransactWriteItems")


@dataclass
class Creates:
    """The create series of one fleet, each create followed by the bare table calls
    (`TableProbe`), so that both meet the table server in the same state."""

    times: list[float] = field(default_factory=list)
    items: float = 0.0  # per create, as the rows before
    calls: float = 0.0
    bytes_read: float = 0.0
    client_cpu: list[float] = field(default_factory=list)  # this process's, per create
    bare: dict[str, list[float]] = field(default_factory=dict)


class TableProbe:
    """Bare boto3 calls on the fleet's table, none of Corral's code around them: what
    the table server alone takes for a GetItem of the cluster (strongly consistent), a
    BatchGetItem of 4 occupied summary shards (eventually consistent, as big as a
    create's sample) and a create's TransactWriteItems (Corral's entries, without the
    events, on the world's own host, which no round visits; fresh ids each time)."""

    def __init__(self, repo: Repository, world: World, container_id: str, operation_id: str):
        self.repo, self.client, self.table = repo, repo.db.client, repo.db.table
        self.cluster = repo.clusters.get(world.cluster_id)
        self.host = repo.hosts.get(world.host_id)
        made = repo.workloads.get(world.cluster_id, container_id)
        self.workload = replace(
            made, host_id=self.host.id, allocations=(), resources=fleet.WORKLOAD
        )
        self.operation = repo.operations.get(world.cluster_id, operation_id)
        occupied = repo.db.get(*OCCUPIED_KEY) or {}
        self.shards = sorted(int(n.split(":")[1]) for n in occupied if n.startswith("shard:"))

    def once(self, into: dict[str, list[float]]) -> None:
        cluster_key = {"pk": {"S": schema.cluster_pk(self.cluster.id)}, "sk": {"S": schema.META}}
        drawn = random.sample(self.shards, min(4, len(self.shards)))
        shard_keys = [{"pk": {"S": PLACEMENT_PK}, "sk": {"S": shard_sk(n)}} for n in drawn]
        workload_id, operation_id = secrets.token_hex(8), f"op-{secrets.token_hex(8)}"
        workload = replace(self.workload, id=workload_id, pending_op=operation_id)
        operation: Operation = replace(self.operation, id=operation_id, workload_id=workload_id)
        entries = self.repo.create_workload_entries(workload, operation, self.cluster, self.host)
        transact: Any = [entry.request for entry in entries]
        calls: dict[str, Callable[[], object]] = {
            "GetItem": lambda: self.client.get_item(
                TableName=self.table, Key=cluster_key, ConsistentRead=True
            ),
            "BatchGetItem of 4 summary shards": lambda: self.client.batch_get_item(
                RequestItems={self.table: {"Keys": shard_keys, "ConsistentRead": False}}
            ),
            "TransactWriteItems": lambda: self.client.transact_write_items(TransactItems=transact),
        }
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            into.setdefault(name, []).append(time.perf_counter() - started)


def _create_series(world: World, probe: TableProbe, meter: TableMeter, repo: Repository) -> Creates:
    """Creates that each read what they decide on: none takes what the one before it
    read (`CreateReadsCache`, which would leave most of them reading nothing)."""
    series = Creates()
    items = calls = size = 0
    for i in range(SAMPLES):
        repo.create_cache.forget_all()
        meter.reset()
        cpu_before = time.process_time()
        started = time.perf_counter()
        world.create(f"c{i}")
        series.times.append(time.perf_counter() - started)
        series.client_cpu.append(time.process_time() - cpu_before)
        reading = meter.reading
        items, calls, size = (
            items + reading.items_read,
            calls + reading.total_calls,
            size + reading.bytes_read,
        )
        probe.once(series.bare)
    series.items, series.calls = items / SAMPLES, calls / SAMPLES
    series.bytes_read = size / SAMPLES
    return series


def _one_fleet(stack: Stack, hosts: int, workloads: int) -> dict[str, Any]:
    settings = stack.settings(f"scale-{hosts}")
    failing = set(range(0, hosts, 100))  # 1% of the hosts (one of a small fleet)
    with (
        stack.table(settings) as repo,
        SimulatedEngine(hosts, latency_s=ENGINE_LATENCY_S, failing=failing) as engine,
    ):
        redis = stack.redis()
        deps = Deps(repo=repo, jobs=JobQueue(redis, settings), redis=redis, settings=settings)
        api = InProcessApi(create_app(deps))
        world = seed(api, repo, stack.docker_url)
        plan = BIG_PLAN | {"containers": workloads + 4 * SAMPLES}
        path = f"{ADMIN}/clusters/{world.cluster_id}"
        expect(api, "PATCH", path, world.operator_key, {"plan": plan}, 200)
        per_host = workloads // hosts
        capacity = fleet.times(fleet.WORKLOAD, per_host) + HEADROOM
        started = time.perf_counter()
        addresses = [engine.address(i) for i in range(hosts)]
        registered = fleet.register(repo, hosts, capacity, addresses=addresses)

        def start(index: int, workload: Workload) -> None:
            labels = {
                LABEL_MANAGED: "true",
                LABEL_WORKLOAD: workload.id,
                LABEL_CLUSTER: workload.cluster_id,
            }
            engine.put(index, SimulatedContainer(f"c-{workload.id}", workload.id, labels))

        loaded = fleet.load(repo, world.cluster_id, world.egg_id, registered, per_host, start)
        load_s = time.perf_counter() - started
        # The simulated fleet's records live in this process, an API process's never do:
        # kept out of the garbage collector's passes over the measured requests.
        gc.collect()
        gc.freeze()
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

        ctx = context.WorkerContext(
            repo=repo, jobs=deps.jobs, drivers=DriverFactory(), settings=settings
        )
        context.install(ctx)
        try:
            probe = TableProbe(repo, world, *world.create("warm"))
            creates = _create_series(world, probe, meter, repo)
            create = (creates.times, creates.items)
            provisioned: list[str] = []

            def create_end_to_end() -> None:
                _, operation_id = world.create(f"e{len(provisioned)}")
                provisioned.append(run_operation(world.cluster_id, operation_id))

            times, items = measure(create_end_to_end, END_TO_END_SAMPLES)
            # the times of the provisions that succeeded: one on a failing host ends early
            outcomes = zip(times, provisioned, strict=True)
            succeeded = [t for t, status in outcomes if status == "succeeded"]
            end_to_end = (succeeded or times, items)
            get = measure(lambda: world.tenant("GET", f"/containers/{some}"), GET_SAMPLES)
            views = {
                name: measure(_get(api, view_path, world.operator_key), 3)
                for name, view_path in (
                    ("/api/v1/status", f"{ADMIN}/status"),
                    ("/api/v1/status?limit=20", f"{ADMIN}/status?limit=20"),
                    ("/api/v1/stats", f"{ADMIN}/stats"),
                    ("cluster view", path),
                )
            }
            sampled = [h.id for h in registered[:ROUND_HOSTS]]
            rounds = {
                "reconcile": [measure(partial(reconcile_one_host, h), 1) for h in sampled],
                "collection": [measure(partial(collect_one_host, h), 1) for h in sampled],
            }
        finally:
            gc.unfreeze()
            context.install(None)
            ctx.drivers.close()
            redis.close()
            stack.flush_redis()
    return {
        "hosts": hosts + 1,  # and the world's own
        "workloads": loaded,
        "load_s": load_s,
        "create": create,
        "creates": creates,
        "end_to_end": end_to_end,
        "provisioned": provisioned,
        "get": get,
        "views": views,
        # per round: each sampled host's wall time, and the items read per host
        "rounds": {
            name: ([times[0] for times, _ in per], sum(items for _, items in per) / len(per))
            for name, per in rounds.items()
        },
        "round_hosts": len(sampled),
    }


def _not_succeeded(fleet_run: dict[str, Any]) -> int:
    return sum(1 for status in fleet_run["provisioned"] if status != "succeeded")


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
    labels = {
        "create": "POST /containers",
        "end_to_end": "create and provision, end to end",
        "get": "GET /containers/:id",
    }
    for name, label in labels.items():
        (big_t, big_items), (small_t, small_items) = large[name], small[name]
        section.rows += [
            Row(f"{label}: p50", ms(median(big_t)), ms(median(small_t)),
                ratio(median(big_t), median(small_t))),
            Row(f"{label}: p99", ms(percentile(big_t, 99)), ms(percentile(small_t, 99)),
                ratio(percentile(big_t, 99), percentile(small_t, 99))),
            Row(f"{label}: items read", number(big_items), number(small_items),
                ratio(big_items, small_items)),
        ]  # fmt: skip
    big_c, small_c = large["creates"], small["creates"]
    section.rows += [
        Row("POST /containers: table calls", number(big_c.calls), number(small_c.calls),
            ratio(big_c.calls, small_c.calls)),
        Row("POST /containers: bytes read", number(big_c.bytes_read, 0),
            number(small_c.bytes_read, 0), ratio(big_c.bytes_read, small_c.bytes_read)),
        Row("POST /containers: this process's CPU, p50", ms(median(big_c.client_cpu)),
            ms(median(small_c.client_cpu)),
            ratio(median(big_c.client_cpu), median(small_c.client_cpu))),
    ]  # fmt: skip
    for call in BARE_CALLS:
        big_t, small_t = big_c.bare[call], small_c.bare[call]
        section.rows.append(
            Row(f"table server alone, {call}: p50", ms(median(big_t)), ms(median(small_t)),
                ratio(median(big_t), median(small_t)))
        )  # fmt: skip
    for view, (_, big_items) in large["views"].items():
        _, small_items = small["views"][view]
        section.rows.append(
            Row(f"{view}: items read", number(big_items), number(small_items),
                ratio(big_items, small_items))
        )  # fmt: skip
    for name in ("reconcile", "collection"):
        (big_t, big_items), (small_t, small_items) = large["rounds"][name], small["rounds"][name]
        section.rows += [
            Row(f"one {name} round: p50 per host", ms(median(big_t)), ms(median(small_t)),
                ratio(median(big_t), median(small_t))),
            Row(f"one {name} round: p99 per host", ms(percentile(big_t, 99)),
                ms(percentile(small_t, 99)), ratio(percentile(big_t, 99), percentile(small_t, 99))),
            Row(f"one {name} round: items read per host", number(big_items),
                number(small_items), ratio(big_items, small_items)),
        ]  # fmt: skip
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
        "A create reads the cluster, the egg and 4 of the placement summary's 64 shards, "
        "drawn at random among the occupied ones this process knows (about 16 hosts each "
        "at 1,000 hosts), in one BatchGetItem, then commits (one TransactWriteItems; its "
        "event numbers come from Redis). Each create here reads afresh: a process that "
        "read them for a create in the last second decides on those and reads nothing "
        "(section 2). A process reads the summary's OCCUPIED item again (a BatchGetItem "
        "more) every 30 s. "
        f"{SAMPLES} creates and {GET_SAMPLES} GETs on each fleet, in this process "
        "(the Falcon app called without HTTP), with the simulated engine's hosts served "
        "by one thread of this process.",
        "/api/v1/status (unpaged) and /api/v1/stats list the hosts (their items grow with "
        "the hosts) and count the workloads from the summary's counters: no workload item "
        "is read. /api/v1/status?limit=20 reads the summary's shard items and the 20 "
        "hosts of its page.",
        "Rounds: each host's share of a reconcile and of a collection round (the jobs "
        "workers/fleet.py enqueues, one per host) run one after the other in this "
        f"process, on the first {ROUND_HOSTS} hosts of each fleet (all of a small one), "
        "against the simulated engine (devstack/sim_engine.py: one process, a port per "
        f"host, {ENGINE_LATENCY_S * 1000:g} ms per engine call); 1% of the hosts fail "
        "every call (one host of a fleet of 10). A round over all hosts is that many "
        "such jobs shared by the workers: its total follows the hosts, its cost per "
        "host follows the host's own workloads.",
        f"End to end: {END_TO_END_SAMPLES} creates, each followed by its provision "
        "(workers.jobs.run_operation in this process) on the simulated host placement "
        "chose; the items read count the worker's too, the times only the provisions that "
        "succeeded (one on a failing host ends early). Operations that did not succeed: "
        f"{_not_succeeded(small)} of the small fleet's, {_not_succeeded(large)} of the "
        "large fleet's (1% of the hosts fail every call).",
        "Table server alone: after each measured create, the same process sends bare "
        "boto3 calls on the same table (bench/scale.py TableProbe): a GetItem of the "
        "cluster, a BatchGetItem of 4 occupied summary shards (the size of a create's "
        "sample) and a create's TransactWriteItems without its events. Their ratio is "
        "what DynamoDB Local alone takes longer on the large table, with no Corral code "
        "around: read the create's ratio against it. CPU: this process's per create (the "
        "in-process API: Corral, boto3 and the parsing of what it read). Bytes read: the "
        "sizes of the items a create read, as DynamoDB counts them (bench/meter.py).",
        "`--quick`: 100 hosts / 10,000 workloads as the large fleet.",
    ]
    return section
