"""The reduced run of bench/scale: 50 hosts and 5,000 workloads loaded straight into
the table. It asserts what the API reads, never how long it takes: a create reads as
many items on 50 hosts as on 10 (a fixed sample of the summary's shards); the fleet
views read as many items with 5,000 workloads as with none, and `/status` pages its
per-host detail; concurrent creates placed
by a stale summary over-commit no host."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import falcon.testing
import pytest

from bench import fleet
from bench.meter import TableMeter
from infra.table import repository
from infra.table.expression import Expression
from infra.table.placement import PLACEMENT_PK, shard_of_host, shard_sk
from services.deps import Deps
from shared.capacity import Resources
from tests.fixtures.corral import Api

HOSTS = 50
PER_HOST = 100  # 5,000 workloads
# Each host holds its loaded workloads, and room for 80 MB more: the three creates
# made before the load (on one host or on several) and at most two of 32 MB.
CAPACITY = fleet.times(fleet.WORKLOAD, PER_HOST) + Resources(
    cpu_centi=800, ram_mb=80, storage_mb=10_000
)


def _reads(meter: TableMeter, call: Callable[[], falcon.testing.Result]) -> tuple[int, int]:
    """(items read, read calls) of one request."""
    meter.reset()
    resp = call()
    assert resp.status_code < 300, resp.text
    calls = meter.reading.calls
    return meter.reading.items_read, sum(
        calls.get(op, 0) for op in ("get_item", "query", "batch_get_item")
    )


def test_fleet_at_scale_reads_by_the_request_not_by_the_fleet(
    api: Api, deps: Deps, monkeypatch: pytest.MonkeyPatch
) -> None:
    # what a create reads (not what it holds from the last second's: test_create_reads)
    monkeypatch.setattr(repository, "CREATE_READS_MAX_AGE_S", 0.0)
    egg = api.make_egg(
        minimum={"cpu_cores": 0.01, "ram_mb": 16, "storage_mb": 0},
        defaults={"cpu_cores": 0.01, "ram_mb": 16, "storage_mb": 16},
    )
    cluster_id = api.make_cluster(
        [egg["id"]], cpu_cores=1000, ram_mb=10_000_000, storage_mb=10_000_000, containers=10_000
    )["id"]
    api.tenant_key = api.make_key(cluster_id)
    meter = TableMeter(deps.repo.db.client)

    def create(ram_mb: int = 16) -> falcon.testing.Result:
        body = {"name": "c", "egg_id": egg["id"], "ram_mb": ram_mb}
        return api.tenant("POST", "/containers", body)

    # a create: the same reads on 50 hosts as on 10
    hosts = fleet.register(deps.repo, 10, CAPACITY)
    _reads(meter, create)  # the key's first use is cached after it
    on_ten = _reads(meter, create)
    hosts += fleet.register(deps.repo, HOSTS - 10, CAPACITY, first=10)
    on_fifty = _reads(meter, create)
    assert on_fifty == on_ten

    # the fleet views: the same reads with 5,000 workloads as with 3
    def views() -> list[tuple[int, int]]:
        return [
            _reads(meter, lambda: api.admin("GET", "/status")),
            _reads(meter, lambda: api.admin("GET", "/status", params={"limit": "7"})),
            _reads(meter, lambda: api.admin("GET", "/stats")),
            _reads(meter, lambda: api.admin("GET", f"/clusters/{cluster_id}")),
            _reads(meter, lambda: api.admin("GET", "/clusters")),
        ]

    before = views()
    loaded = fleet.load(deps.repo, cluster_id, egg["id"], hosts, PER_HOST)
    assert views() == before
    total = loaded + 3
    status = api.admin("GET", "/status").json
    assert status["totals"]["workloads"] == {"provisioning": 3, "running": loaded}
    assert sum(sum(h["workloads"].values()) for h in status["hosts"]) == total
    # the per-host detail in pages: every host once, the same totals on every page
    paged: list[str] = []
    params = {"limit": "7"}
    while True:
        page = api.admin("GET", "/status", params=params)
        assert page.status_code == 200, page.text
        assert page.json["totals"] == status["totals"] and len(page.json["hosts"]) <= 7
        paged += [h["id"] for h in page.json["hosts"]]
        if "Next-Cursor" not in page.headers:
            break
        params = {"limit": "7", "cursor": page.headers["Next-Cursor"]}
    assert paged == sorted(h["id"] for h in status["hosts"]) and len(paged) == HOSTS
    stats = api.admin("GET", "/stats").json
    assert (stats["containers"], stats["running_tasks"]) == (total, loaded)
    cluster = api.admin("GET", f"/clusters/{cluster_id}").json
    assert (cluster["node_count"], cluster["running_tasks"]) == (HOSTS, loaded)

    # a summary that says every host is empty: concurrent creates still fit the hosts
    for host in hosts:
        write = Expression().set(f"used:{host.id}:ram_mb", 0).set(f"count:{host.id}", 0)
        deps.repo.db.update(PLACEMENT_PK, shard_sk(shard_of_host(host.id)), write)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: create(ram_mb=32), range(24)))
    assert {r.status_code for r in results} <= {202, 409}
    assert all(
        r.json["error"]["code"] == "no_host_available" for r in results if r.status_code == 409
    )
    placed = sum(1 for r in results if r.status_code == 202)
    assert placed > 0
    held = 0
    for host in hosts:
        record = deps.repo.hosts.get(host.id)
        live = [w for w in deps.repo.workloads.on_host(host.id) if not w.status.is_gone]
        assert record.used.ram_mb == sum(w.resources.ram_mb for w in live) <= CAPACITY.ram_mb
        assert record.workload_count == len(live)
        held += len(live)
    assert held == total + placed
