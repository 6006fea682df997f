"""2. Table cost per API call: DynamoDB calls and capacity units of each tenant
endpoint, in-process (falcon's TestClient) against the real table server (DynamoDB Local) and Redis.

The repository's TableStats is reset before each call and read after it; the
TableMeter (bench/meter.py) on the same boto3 client adds items read and the units
DynamoDB would bill. Between calls, the queued job runs in this process (rq's
SimpleWorker, JSON serializer) against the bench's dockerd, with a worker context
of its own, so that each change finds the container idle and nothing of the job is
counted against the API call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.meter import Reading, TableMeter
from bench.report import Row, Section, number, table
from bench.stack import Stack
from bench.world import PUBLIC, ApiError, InProcessApi, World, seed
from handlers.app import create_app
from handlers.auth import CACHE_PREFIX, USED_PREFIX
from infra.drivers.factory import DriverFactory
from infra.queue import JobQueue
from infra.table.dynamo import Dynamo, TableStats, make_client
from infra.table.repository import Repository
from services.deps import Deps
from workers import context

TITLE = "2. Table cost per API call (in-process, DynamoDB Local)"


@dataclass
class Cost:
    label: str
    status: int
    calls: dict[str, int]
    local_read: float
    local_write: float
    meter: Reading

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())


class Probe:
    """Calls the app and reads what each call cost the table."""

    def __init__(self, world: World, stats: TableStats, meter: TableMeter) -> None:
        self.world = world
        self.stats = stats
        self.meter = meter
        self.costs: list[Cost] = []

    def call(self, label: str, method: str, path: str, body: Any = None,
             status: int = 200) -> Any:  # fmt: skip
        self.stats.reset()
        self.meter.reset()
        code, answer = self.world.api.call(method, PUBLIC + path, self.world.tenant_key, body)
        cost = Cost(
            label, code, dict(self.stats.calls), self.stats.read_units, self.stats.write_units,
            self.meter.reading,
        )  # fmt: skip
        if code != status:
            raise ApiError(f"{method} {path} answered {code}, not {status}: {answer}")
        self.costs.append(cost)
        return answer


def _run_jobs(deps: Deps, repo: Repository, cluster_id: str, operation_id: str) -> None:
    """Run the queued jobs here and check that the operation succeeded."""
    from rq import SimpleWorker
    from rq.serializers import JSONSerializer

    worker = SimpleWorker([deps.jobs.queue], connection=deps.redis, serializer=JSONSerializer)
    worker.work(burst=True, with_scheduler=False, logging_level="WARNING")
    op = repo.operations.get(cluster_id, operation_id)
    if op.status.value != "succeeded":
        raise ApiError(f"operation {operation_id} ended {op.status.value}: {op.failure}")


def _forget_auth(redis: Any) -> int:
    keys = [*redis.scan_iter(f"{CACHE_PREFIX}*"), *redis.scan_iter(f"{USED_PREFIX}*")]
    return int(redis.delete(*keys)) if keys else 0


def _calls(calls: dict[str, int]) -> str:
    return ", ".join(f"{n} {name}" for name, n in sorted(calls.items())) or "none"


def _measure(stack: Stack) -> list[Cost]:
    settings = stack.settings("cost")
    with stack.table(settings) as repo:
        repo.db.consumed_capacity = True  # the local RCU/WCU columns
        redis = stack.redis()
        deps = Deps(repo=repo, jobs=JobQueue(redis, settings), redis=redis, settings=settings)
        meter = TableMeter(repo.db.client)
        world = seed(InProcessApi(create_app(deps)), repo, stack.docker_url)
        worker_repo = Repository(Dynamo(make_client(settings), settings.table_name))
        ctx = context.WorkerContext(
            repo=worker_repo, jobs=deps.jobs, drivers=DriverFactory(), settings=settings
        )
        context.install(ctx)
        try:
            probe = Probe(world, repo.db.stats, meter)
            cid = world.cluster_id

            def settle(answer: dict[str, Any]) -> None:
                _run_jobs(deps, worker_repo, cid, answer["operation"]["id"])

            _forget_auth(redis)
            probe.call("GET /cluster (first call: auth cache cold)", "GET", "/cluster")
            probe.call("GET /cluster (next call: auth cache warm)", "GET", "/cluster")
            probe.call("GET /capacity", "GET", "/capacity")
            probe.call("GET /eggs", "GET", "/eggs")
            created = probe.call(
                "POST /containers (the process's first: reads the occupied shards)", "POST",
                "/containers", {"name": "cost", "egg_id": world.egg_id}, 202,
            )  # fmt: skip
            settle(created)
            container = f"/containers/{created['container']['id']}"
            probe.call("GET /containers (1 container)", "GET", "/containers")
            probe.call("GET /containers/:id", "GET", container)
            op_path = f"/operations/{created['operation']['id']}"
            probe.call("GET /operations/:id", "GET", op_path)
            probe.call("GET /operations/:id/wait (finished)", "GET", f"{op_path}/wait?timeout=1")
            patch = {"name": "cost-2", "resources": {"ram_mb": 96}}
            settle(probe.call("PATCH /containers/:id (rename, resize)", "PATCH", container,
                              patch, 202))  # fmt: skip
            settle(probe.call("POST /containers/:id/power (stop)", "POST", f"{container}/power",
                              {"signal": "stop"}, 202))  # fmt: skip
            settle(probe.call("DELETE /containers/:id", "DELETE", container, None, 202))
            later = probe.call("POST /containers (a later create)", "POST", "/containers",
                               {"name": "cost-3", "egg_id": world.egg_id}, 202)  # fmt: skip
            held = probe.call(
                "POST /containers (right after: decided on what the one before read)", "POST",
                "/containers", {"name": "cost-4", "egg_id": world.egg_id}, 202,
            )  # fmt: skip
            settle(later)
            settle(held)
            _forget_auth(redis)
            probe.call("GET /containers/:id (first call: auth cache cold)", "GET", container)
            return probe.costs
        finally:
            context.install(None)
            ctx.drivers.close()
            redis.close()
            stack.remove_containers()
            stack.flush_redis()


def run(stack: Stack, quick: bool) -> Section:
    costs = _measure(stack)  # deterministic: the same in quick and full runs
    by_label = {c.label: c for c in costs}
    cold = by_label["GET /cluster (first call: auth cache cold)"]
    warm = by_label["GET /cluster (next call: auth cache warm)"]
    section = Section(
        TITLE,
        "for authentication, the first call with a cold auth cache (the key read from the "
        "table); for the endpoints, the detail table below.",
    )
    # GET /cluster's own handler reads the cluster: one get_item is all it needs.
    verdict = "auth reads nothing when warm" if warm.calls == {"get_item": 1} else "see below"
    section.rows = [
        Row("GET /cluster: table calls", str(warm.total_calls), str(cold.total_calls),
            f"{cold.total_calls - warm.total_calls} fewer: {verdict}"),
        Row("GET /cluster: table calls by operation", _calls(warm.calls), _calls(cold.calls), ""),
        Row("GET /cluster: est. read units", number(warm.meter.read_units),
            number(cold.meter.read_units), ""),
        Row("GET /cluster: est. write units", number(warm.meter.write_units),
            number(cold.meter.write_units), ""),
    ]  # fmt: skip
    section.details = table(
        ["call", "status", "table calls", "by operation", "items read",
         "local RCU", "local WCU", "est. RCU", "est. WCU"],
        [
            [c.label, str(c.status), str(c.total_calls), _calls(c.calls),
             str(c.meter.items_read), number(c.local_read), number(c.local_write),
             number(c.meter.read_units), number(c.meter.write_units)]
            for c in costs
        ],
    )  # fmt: skip
    largest = max(c.meter.largest_item for c in costs)
    section.notes = [
        "The local columns are DynamoDB Local's answer to ReturnConsumedCapacity, "
        "given as TableStats recorded it.",
        "The est. columns apply DynamoDB's rules to the requests and responses "
        "(bench/meter.py): reads in 4 KB units of the items returned, halved when "
        "eventually consistent; writes in 1 KB units; transactions twice that per item, "
        "with 1 KB assumed for an update whose size the client cannot see. Writes to the "
        f"two global secondary indexes are not included. The largest item seen was "
        f"{largest} bytes.",
        "The first call with a cold auth cache reads the key record by its hash and the "
        "key's cluster (two get_items) and records the key's last use (an update_item, at "
        "most every 5 minutes per key); later calls find the principal in Redis and cost "
        "the table only what the endpoint itself reads.",
        "Counts are deterministic, so quick and full runs measure them the same way, once.",
    ]
    return section
