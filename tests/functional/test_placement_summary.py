"""Placement reads a sample of the placement summary, not the fleet: a create reads as
many items with forty hosts as with ten, and on a few hosts it still chooses among all
of them; a summary that lags never over-commits a host, and the host check repairs
it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import falcon.testing
import pytest

from bench import fleet
from bench.meter import TableMeter
from infra.table import repository
from infra.table.expression import Expression
from infra.table.placement import (
    OCCUPIED_SK,
    PLACEMENT_PK,
    SAMPLED_SHARDS,
    shard_of_host,
    shard_sk,
)
from infra.table.repository import Repository
from services.deps import Deps
from shared.capacity import Resources
from shared.clock import new_id, utc_now
from tests.fixtures.corral import Api, make_tenant
from workers import context
from workers.hosts import repair_placement_summary


def _small_host(api: Api, name: str, ram_mb: int) -> dict[str, Any]:
    capacity = {"cpu_cores": 8, "ram_mb": ram_mb, "storage_mb": 100000}
    return api.make_host(name=name, capacity=capacity)


def _reads_of_a_create(api: Api, meter: TableMeter, name: str) -> tuple[int, dict[str, int]]:
    """(items read, calls by operation) of one tenant create."""
    meter.reset()
    resp = api.tenant("POST", "/containers", {"name": name, "egg_id": _egg_of(api)})
    assert resp.status_code == 202, resp.text
    return meter.reading.items_read, dict(meter.reading.calls)


def _egg_of(api: Api) -> str:
    return str(api.admin("GET", "/eggs").json[0]["id"])


def test_a_create_reads_as_many_items_with_forty_hosts_as_with_ten(
    api: Api, deps: Deps, monkeypatch: pytest.MonkeyPatch
) -> None:
    # what a create reads (not what it holds from the last second's: test_create_reads)
    monkeypatch.setattr(repository, "CREATE_READS_MAX_AGE_S", 0.0)
    make_tenant(api, ram_mb=100000, containers=50)
    for i in range(9):
        _small_host(api, f"few-{i}", 8192)
    meter = TableMeter(deps.repo.db.client)
    _reads_of_a_create(api, meter, "warm")  # the key's first use is cached after it
    with_ten, calls_with_ten = _reads_of_a_create(api, meter, "a")
    # ten hosts hashed into 64 shards occupy more than the create draws (but with a
    # chance of about 1 in 10^9)
    assert _occupied(deps) > SAMPLED_SHARDS
    for i in range(30):
        _small_host(api, f"many-{i}", 8192)
    with_forty, calls_with_forty = _reads_of_a_create(api, meter, "b")
    assert len(deps.repo.hosts.list()) == 40
    assert (with_forty, calls_with_forty) == (with_ten, calls_with_ten)
    # One batch of the cluster, the egg and the shards drawn (the occupied shards are
    # known since the first create, and this process registered the hosts since); the
    # chosen host's held ports; the transaction. Nothing else: the event numbers come
    # from Redis (the table reserves them a block at a time, at the log's first event).
    assert calls_with_forty == {
        "batch_get_item": 1,
        "query": 1,
        "transact_write_items": 1,
    }


def test_a_host_another_process_registered_is_drawn_once_a_sample_finds_no_fit(
    api: Api, deps: Deps
) -> None:
    """This process draws from the occupied shards it read; a host that entered another
    shard meanwhile (registered by another API process) is read when a sample holds no
    host that fits, and drawn from then on, in the create's one batch."""
    tenant = make_tenant(api, ram_mb=1_000_000, containers=50)
    meter = TableMeter(deps.repo.db.client)
    assert tenant.create(name="warm").status_code == 202  # reads the occupied shards
    roomy = replace(
        fleet.host("roomy", "unix:///nonexistent.sock", ROOMY, utc_now()),
        id=_id_outside_shard(shard_of_host(tenant.host["id"])),
    )
    Repository(deps.repo.db).hosts.create(roomy)  # another process's repository
    too_big = 300_000  # MB: more than the tenant's host holds
    for name, batches in (("first", 2), ("second", 1)):
        meter.reset()
        resp = tenant.create(name=name, ram_mb=too_big)
        assert resp.status_code == 202, resp.text
        # the first: the sample, then the whole summary; the second: the sample alone
        assert meter.reading.calls["batch_get_item"] == batches, name
    assert sorted(w.name for w in deps.repo.workloads.on_host(roomy.id)) == ["first", "second"]


ROOMY = Resources(cpu_centi=6400, ram_mb=1_000_000, storage_mb=10_000_000)


def _id_outside_shard(shard: int) -> str:
    return next(i for i in (new_id() for _ in range(1000)) if shard_of_host(i) != shard)


def test_a_create_on_few_hosts_chooses_among_all_of_them(api: Api, deps: Deps) -> None:
    """Up to SAMPLED_SHARDS occupied shards, the sample is the whole summary: the
    tightest fit wins, as it did when placement read every host."""
    roomy = {"cpu_cores": 8, "ram_mb": 65536, "storage_mb": 100000}
    make_tenant(api, host={"capacity": roomy}, ram_mb=100000, containers=50)
    tight = _small_host(api, "tight", 1024)
    _small_host(api, "roomy", 65536)
    for name in ("a", "b"):
        resp = api.tenant("POST", "/containers", {"name": name, "egg_id": _egg_of(api)})
        assert resp.status_code == 202, resp.text
    on_tight = deps.repo.workloads.on_host(tight["id"])
    assert sorted(w.name for w in on_tight) == ["a", "b"]


def _occupied(deps: Deps) -> int:
    item = deps.repo.db.get(PLACEMENT_PK, OCCUPIED_SK) or {}
    return sum(1 for name in item if name.startswith("shard:"))


def _set_summary_counter(deps: Deps, host_id: str, dimension: str, value: int) -> None:
    """Make the summary lag the way a drift would: its copy of a counter is wrong."""
    write = Expression().set(f"used:{host_id}:{dimension}", value)
    deps.repo.db.update(PLACEMENT_PK, shard_sk(shard_of_host(host_id)), write)


def test_a_stale_summary_never_over_commits_a_host(
    api: Api, deps: Deps, worker_context: context.WorkerContext
) -> None:
    tenant = make_tenant(api, cpu_cores=100, ram_mb=100000, containers=100)
    api.admin("DELETE", f"/hosts/{tenant.host['id']}")
    hosts = [_small_host(api, f"h{i}", 512) for i in range(2)]
    for i in range(8):
        assert tenant.create(name=f"fill{i}", ram_mb=128, cpu_cores=0.1).status_code == 202
    for host in hosts:  # both are full; the summary now says both are empty
        _set_summary_counter(deps, host["id"], "ram_mb", 0)
    assert all(h.used.ram_mb == 0 for h in deps.repo.placement.hosts())

    def create(i: int) -> falcon.testing.Result:
        return tenant.create(name=f"c{i}", ram_mb=128, cpu_cores=0.1)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(create, range(8)))
    assert {r.status_code for r in results} == {409}
    assert {r.json["error"]["code"] for r in results} == {"no_host_available"}
    for host in hosts:
        record = deps.repo.hosts.get(host["id"])
        placed = [w for w in deps.repo.workloads.on_host(host["id"]) if not w.status.is_gone]
        assert record.used.ram_mb == sum(w.resources.ram_mb for w in placed) == 512
        assert record.workload_count == len(placed) == 4
        # the host check puts the summary right
        assert repair_placement_summary(worker_context, record)
        assert not repair_placement_summary(worker_context, deps.repo.hosts.get(host["id"]))
    assert {h.used.ram_mb for h in deps.repo.placement.hosts()} == {512}


def test_a_host_the_summary_does_not_hold_is_placed_on_once_repaired(
    api: Api, deps: Deps, worker_context: context.WorkerContext
) -> None:
    tenant = make_tenant(api, ram_mb=100000, containers=50)
    # a host registered before the summary existed: it is not in the summary, which
    # holds only a draining host
    deps.repo.db.transact([deps.repo.placement.forget(tenant.host["id"])])
    draining = api.make_host(name="draining")["id"]
    api.admin("POST", f"/hosts/{draining}/drain")
    refused = tenant.create(name="x")
    assert refused.status_code == 409 and refused.json["error"]["code"] == "no_host_available"
    host = deps.repo.hosts.get(tenant.host["id"])
    assert repair_placement_summary(worker_context, host)
    placed = tenant.create(name="y")
    assert placed.status_code == 202, placed.text
    [copy] = [h for h in deps.repo.placement.hosts() if h.id == host.id]
    record = deps.repo.hosts.get(tenant.host["id"])
    assert (copy.used.ram_mb, copy.workload_count) == (record.used.ram_mb, 1)


def test_drain_and_delete_reach_the_summary(api: Api, deps: Deps) -> None:
    tenant = make_tenant(api)
    host_id = tenant.host["id"]
    api.admin("POST", f"/hosts/{host_id}/drain")
    assert [h.status.value for h in deps.repo.placement.hosts()] == ["draining"]
    api.admin("POST", f"/hosts/{host_id}/undrain")
    assert [h.status.value for h in deps.repo.placement.hosts()] == ["ready"]
    assert api.admin("DELETE", f"/hosts/{host_id}").status_code == 204
    assert deps.repo.placement.hosts() == []


def test_a_summary_that_holds_no_host_yet_sends_a_create_to_the_hosts(api: Api, deps: Deps) -> None:
    """Just after an upgrade to the summary's shards, before the host check entered
    the hosts: a create still finds one."""
    tenant = make_tenant(api, ram_mb=100000, containers=5)
    deps.repo.db.transact([deps.repo.placement.forget(tenant.host["id"])])
    resp = tenant.create(name="a")
    assert resp.status_code == 202, resp.text
    assert [w.name for w in deps.repo.workloads.on_host(tenant.host["id"])] == ["a"]
