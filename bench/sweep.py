"""5. Sweep scaling: finding and enqueuing K due workloads among N.

For each N, a fresh table gets N workload items (batch_write_item, as
tests/functional/test_lifetimes.py loads them), K of them past their expiry and the
rest an hour away. Then, in this process with a worker context installed,
`workers.sweeps.sweep_expired` runs once, measured with the repository's TableStats
and the TableMeter; the baseline is what a naive sweep reads: a full Scan of the
same table, measured the same way.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from bench.meter import READ_UNIT, Reading, TableMeter, item_size
from bench.report import Row, Section, median, ms, number, ratio, table
from bench.stack import Stack
from bench.world import InProcessApi, World, seed
from handlers.app import create_app
from infra.drivers.factory import DriverFactory
from infra.queue import JobQueue
from infra.table.attributes import to_wire
from infra.table.workloads import workload_item
from services.deps import Deps
from shared.capacity import Resources
from shared.clock import iso, utc_now
from shared.models import Engine, Workload
from shared.states import WorkloadStatus
from workers import context
from workers.sweeps import BATCH as BATCH_LIMIT
from workers.sweeps import sweep_expired

TITLE = "5. Expiry sweep: cost follows the due workloads, not the fleet"
DUE = 10
BATCH = 25  # batch_write_item's limit
LOADERS = 4  # concurrent batch writers: the client's work overlaps the server's


def _workload(world: World, index: int, expires_at: datetime, now: datetime) -> Workload:
    return Workload(
        id=f"w{index:06d}",
        cluster_id=world.cluster_id,
        name=f"w{index}",
        egg_id=world.egg_id,
        engine=Engine.DOCKER,
        host_id=world.host_id,
        resources=Resources(cpu_centi=1, ram_mb=16),
        status=WorkloadStatus.RUNNING,
        created_at=now,
        updated_at=now,
        expires_at=expires_at,
    )


def _load(client: Any, table_name: str, items: list[dict[str, Any]]) -> None:
    def write(batch: list[dict[str, Any]]) -> None:
        pending = {table_name: [{"PutRequest": {"Item": item}} for item in batch]}
        while pending:
            answer = client.batch_write_item(RequestItems=pending)
            pending = answer.get("UnprocessedItems") or {}

    batches = [items[i : i + BATCH] for i in range(0, len(items), BATCH)]
    with ThreadPoolExecutor(LOADERS) as pool:
        list(pool.map(write, batches))


def _scan(client: Any, table_name: str, now: datetime) -> int:
    """The naive sweep: a Scan of the whole table with a filter keeping what is due.
    DynamoDB reads (and bills) every item; only the due ones come back. Returns how
    many came back."""
    due = 0
    kwargs: dict[str, Any] = {
        "TableName": table_name,
        "FilterExpression": "#type = :workload AND expires_at <= :now",
        "ExpressionAttributeNames": {"#type": "type"},
        "ExpressionAttributeValues": {":workload": {"S": "workload"}, ":now": {"S": iso(now)}},
        "ReturnConsumedCapacity": "TOTAL",
    }
    while True:
        page = client.scan(**kwargs)
        due += len(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return due
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _scan_read_units(items: list[dict[str, Any]]) -> float:
    """What a Scan of these items bills: 4 KB units of all the data it reads (not only
    what passes the filter), halved for an eventually consistent read."""
    return math.ceil(sum(item_size(item) for item in items) / READ_UNIT) / 2


def _one_size(stack: Stack, fleet: int, repeats: int) -> dict[str, Any]:
    settings = stack.settings(f"sweep-{fleet}")
    with stack.table(settings) as repo:
        redis = stack.redis()
        deps = Deps(repo=repo, jobs=JobQueue(redis, settings), redis=redis, settings=settings)
        world = seed(InProcessApi(create_app(deps)), repo, stack.docker_url)
        now = utc_now()
        every = fleet // DUE
        due, later = now - timedelta(seconds=5), now + timedelta(hours=1)
        workloads = [
            _workload(world, i, due if i % every == 0 else later, now) for i in range(fleet)
        ]
        items = [to_wire(workload_item(w)) for w in workloads]
        client = repo.db.client
        started = time.perf_counter()
        _load(client, settings.table_name, items)
        load_s = time.perf_counter() - started
        meter = TableMeter(client)
        ctx = context.WorkerContext(
            repo=repo, jobs=deps.jobs, drivers=DriverFactory(), settings=settings
        )
        context.install(ctx)
        try:
            # Both are read-only: repeat them, interleaved, and keep the medians.
            scan_times, find_times = [], []
            for _ in range(repeats):
                meter.reset()
                started = time.perf_counter()
                found = _scan(client, settings.table_name, utc_now())
                scan_times.append(time.perf_counter() - started)
                scan: Reading = meter.reading
                if found != DUE:
                    raise RuntimeError(f"the scan found {found} due workloads, not {DUE}")
                meter.reset()
                started = time.perf_counter()
                listed = repo.workloads.due(utc_now(), BATCH_LIMIT)  # the sweep's reads
                find_times.append(time.perf_counter() - started)
                if len(listed) != DUE:
                    raise RuntimeError(f"the expiry index listed {len(listed)} due, not {DUE}")
            # The meter sees only the items that passed the filter; the bill is for all.
            scan.read_units = _scan_read_units(items)
            repo.db.stats.reset()
            meter.reset()
            started = time.perf_counter()
            reaped = sweep_expired()
            sweep_s = time.perf_counter() - started
            sweep: Reading = meter.reading
            stats_calls = dict(repo.db.stats.calls)
            if reaped != DUE:
                raise RuntimeError(f"the sweep started {reaped} reaps, not {DUE}")
        finally:
            context.install(None)
            ctx.drivers.close()
            redis.close()
            stack.flush_redis()
    return {
        "fleet": fleet,
        "load_s": load_s,
        "sweep_s": sweep_s,
        "find_s": median(find_times),
        "scan_s": median(scan_times),
        "sweep": sweep,
        "scan": scan,
        "stats_calls": stats_calls,
    }


def _reads(reading: Reading) -> int:
    return sum(n for op, n in reading.calls.items() if op in ("get_item", "query", "scan"))


def run(stack: Stack, quick: bool) -> Section:
    fleets = [1_000, 10_000] if quick else [1_000, 10_000, 50_000]
    # The scan of 50,000 items is slow on a local table server: measured once.
    results = [_one_size(stack, fleet, 1 if quick or fleet > 10_000 else 3) for fleet in fleets]
    section = Section(
        TITLE,
        "a Scan of the whole table with a filter on expires_at (what a naive sweep reads), "
        f"measured in the same run; K = {DUE} due workloads in each fleet of N.",
    )
    for r in results:
        n = f"N = {r['fleet']:,}"
        sweep, scan = r["sweep"], r["scan"]
        section.rows += [
            Row(f"{n}: time to find the due", ms(r["find_s"]), ms(r["scan_s"]),
                ratio(r["find_s"], r["scan_s"])),
            Row(f"{n}: read calls", str(_reads(sweep)), str(_reads(scan)),
                ratio(_reads(sweep), _reads(scan))),
            Row(f"{n}: items read", str(sweep.items_read), str(scan.items_read),
                ratio(sweep.items_read, scan.items_read)),
            Row(f"{n}: est. read units", number(sweep.read_units), number(scan.read_units),
                ratio(sweep.read_units, scan.read_units)),
        ]  # fmt: skip
    section.details = table(
        ["N", "loading N items", "sweep_expired: time", "sweep: calls (TableStats)",
         "sweep: items read", "sweep: est. WCU", "scan: calls", "scan: items read"],
        [
            [f"{r['fleet']:,}", f"{r['load_s']:.1f} s", ms(r["sweep_s"]),
             ", ".join(f"{n} {op}" for op, n in sorted(r["stats_calls"].items())),
             ", ".join(f"{n} by {op}" for op, n in sorted(r["sweep"].items.items())),
             number(r["sweep"].write_units),
             ", ".join(f"{n} {op}" for op, n in sorted(r["scan"].calls.items())),
             str(r["scan"].items_read)]
            for r in results
        ],
    )  # fmt: skip
    section.notes = [
        "Time to find the due: `WorkloadStore.due`, the sweep's reads alone, "
        "against the scan (medians of 3, interleaved; 1 for N = 50,000 and with "
        "`--quick`). `sweep_expired: time` is the whole sweep: those reads, then per "
        "due workload a get_item, a transaction and an enqueue.",
        "The sweep queries the sparse expiry index (GSI2, keys only, one query per "
        "shard) for entries due by now, reads each due workload (a get_item), and starts "
        "its reap with one transaction and one enqueue: its reads and writes follow K. "
        "The scan reads every item of the table (N workloads plus the cluster, egg, host "
        "and key records) and returns the K due ones; its est. read units count the data "
        "of the N workload items, which DynamoDB bills whether or not they pass the filter.",
        "Time: DynamoDB answers an index query in time that follows the items it "
        "returns. A local table server need not, so locally the sweep's time may also grow "
        "with N; the reads, which are what DynamoDB bills and what bounds its latency, "
        "do not.",
        "`--quick` leaves out N = 50,000.",
    ]
    return section
