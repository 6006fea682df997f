"""Lifetimes through the API, and the sweep's cost: it reads only what is due."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from infra.table.attributes import to_wire
from infra.table.schema import SHARDS
from infra.table.workloads import workload_item
from services.deps import Deps
from shared.capacity import Resources
from shared.errors import Failure
from shared.models import Engine, Workload
from shared.states import WorkloadStatus
from tests.fixtures.corral import Api, Tenant, make_tenant
from workers import context
from workers.sweeps import sweep_expired

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import WriteRequestTypeDef


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_create_with_lifetime_shows_expires_at(tenant: Tenant) -> None:
    before = datetime.now(UTC)
    body = tenant.create(lifetime=120).json["container"]
    expires = _parse(body["expires_at"])
    assert before + timedelta(seconds=119) <= expires <= datetime.now(UTC) + timedelta(seconds=121)
    assert tenant.create(name="forever").json["container"]["expires_at"] is None


def test_create_with_expires_at_and_invalid_combinations(tenant: Tenant) -> None:
    at = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    body = tenant.create(expires_at=at.isoformat()).json["container"]
    assert _parse(body["expires_at"]) == at
    both = tenant.create(lifetime=10, expires_at=at.isoformat())
    assert both.status_code == 400 and both.json["error"]["code"] == "invalid_input"
    past = tenant.create(expires_at="2001-01-01T00:00:00Z")
    assert past.status_code == 400 and "future" in past.json["error"]["message"]
    for bad in (0, -5, "10", 1.5, True):
        resp = tenant.create(lifetime=bad)
        assert resp.status_code == 400 and resp.json["error"]["code"] == "invalid_input", bad


def test_plan_default_and_maximum(api: Api) -> None:
    tenant = make_tenant(api, default_lifetime=600, max_lifetime=3600)
    body = tenant.create().json["container"]
    assert body["expires_at"] is not None
    too_long = tenant.create(name="long", lifetime=7200)
    assert too_long.status_code == 400
    assert "3600" in too_long.json["error"]["message"]
    cid = body["id"]
    renewed = api.tenant("POST", f"/containers/{cid}/lease", {"lifetime": 3000})
    assert renewed.status_code == 200, renewed.text
    assert _parse(renewed.json["expires_at"]) > _parse(body["expires_at"])
    refused = api.tenant("POST", f"/containers/{cid}/lease", {"lifetime": 4000})
    assert refused.status_code == 400
    empty = api.tenant("POST", f"/containers/{cid}/lease", {})
    assert empty.status_code == 400 and empty.json["error"]["code"] == "invalid_input"
    plan = api.tenant("GET", "/cluster").json["plan"]
    assert plan["default_lifetime"] == 600 and plan["max_lifetime"] == 3600


def test_lease_of_unknown_or_foreign_container_is_not_found(api: Api, tenant: Tenant) -> None:
    assert api.tenant("POST", "/containers/nope/lease", {"lifetime": 5}).status_code == 404
    mine = api.tenant_key
    other = make_tenant(api)
    foreign = other.create().json["container"]["id"]
    resp = api.tenant("POST", f"/containers/{foreign}/lease", {"lifetime": 5}, key=mine)
    assert resp.status_code == 404


def _workload(
    cluster_id: str, host_id: str, egg_id: str, index: int, expires_at: datetime, now: datetime
) -> Workload:
    return Workload(
        id=f"w{index:05d}",
        cluster_id=cluster_id,
        name=f"w{index}",
        egg_id=egg_id,
        engine=Engine.DOCKER,
        host_id=host_id,
        resources=Resources(cpu_centi=1, ram_mb=6),
        status=WorkloadStatus.RUNNING,
        created_at=now,
        updated_at=now,
        expires_at=expires_at,
    )


def test_sweep_reads_only_the_due_workloads(
    api: Api, deps: Deps, worker_context: context.WorkerContext
) -> None:
    """5,000 workloads with a lease, 10 of them due: the sweep's table reads follow the 10."""
    tenant = make_tenant(api)
    now = datetime.now(UTC)
    client, table = deps.repo.db.client, deps.settings.table_name
    items = [
        _workload(
            tenant.cluster["id"],
            tenant.host["id"],
            tenant.egg["id"],
            i,
            now - timedelta(seconds=5) if i % 500 == 0 else now + timedelta(hours=1),
            now,
        )
        for i in range(5000)
    ]
    for start in range(0, len(items), 25):
        batch = items[start : start + 25]
        puts: list[WriteRequestTypeDef] = [
            {"PutRequest": {"Item": to_wire(workload_item(w))}} for w in batch
        ]
        client.batch_write_item(RequestItems={table: puts})

    stats = deps.repo.db.stats
    stats.reset()
    assert sweep_expired() == 10
    # one query per shard of the expiry index, one read per due workload; then the writes
    assert stats.calls.get("query", 0) == SHARDS
    assert stats.calls.get("get_item", 0) == 10
    assert stats.calls.get("transact_write_items", 0) == 10
    assert "scan" not in stats.calls
    for i in range(0, 5000, 500):
        assert (
            deps.repo.workloads.get(tenant.cluster["id"], f"w{i:05d}").status
            == WorkloadStatus.DELETING
        )
    assert deps.repo.workloads.get(tenant.cluster["id"], "w00001").status == WorkloadStatus.RUNNING


def test_overlapping_sweeps_reap_once(
    api: Api, deps: Deps, worker_context: context.WorkerContext
) -> None:
    tenant = make_tenant(api)
    ids = [tenant.create(name=f"x{i}", lifetime=1).json["container"]["id"] for i in range(3)]
    # the provisions finish (no host needed to check the sweep: close them by hand)
    for cid in ids:
        w = deps.repo.workloads.get(tenant.cluster["id"], cid)
        assert w.pending_op is not None
        op = deps.repo.operations.get(tenant.cluster["id"], w.pending_op)
        deps.repo.finish_operation(
            op, w, status=WorkloadStatus.RUNNING, error=None, now=datetime.now(UTC)
        )
    later = datetime.now(UTC) + timedelta(seconds=5)
    worker_context.clock = lambda: later
    results: list[int] = []
    barrier = threading.Barrier(4)

    def sweep() -> None:
        barrier.wait()
        results.append(sweep_expired())

    threads = [threading.Thread(target=sweep) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results) == 3, results
    for cid in ids:
        w = deps.repo.workloads.get(tenant.cluster["id"], cid)
        assert w.pending_op is not None
        assert w.status == WorkloadStatus.DELETING and w.pending_op.startswith("op-reap-")
    reap_jobs = [j for j in deps.jobs.queue.job_ids if j.startswith("op-reap-")]
    assert len(reap_jobs) == 3


def test_a_failed_reap_does_not_stop_the_next_sweeps(
    tenant: Tenant, deps: Deps, worker_context: context.WorkerContext
) -> None:
    """Issue 12, defect 6: the reap's id was fixed for a minute, so the sweep after a
    failed reap collided with the failed operation's record and crashed."""
    cluster_id = tenant.cluster["id"]
    cid = tenant.create(lifetime=1).json["container"]["id"]
    w = deps.repo.workloads.get(cluster_id, cid)
    assert w.pending_op is not None
    provision = deps.repo.operations.get(cluster_id, w.pending_op)
    deps.repo.finish_operation(
        provision, w, status=WorkloadStatus.RUNNING, error=None, now=datetime.now(UTC)
    )
    later = datetime.now(UTC) + timedelta(seconds=5)
    worker_context.clock = lambda: later
    assert sweep_expired() == 1
    reaping = deps.repo.workloads.get(cluster_id, cid)
    assert reaping.pending_op is not None
    reap = deps.repo.operations.get(cluster_id, reaping.pending_op)
    # the reap's job fails, as on a host that refuses the removal
    deps.repo.finish_operation(
        reap,
        reaping,
        status=WorkloadStatus.ERROR,
        error=Failure("host_error", "The host refused."),
        now=later,
    )

    assert sweep_expired() == 1  # the same minute: a new reap starts

    retried = deps.repo.workloads.get(cluster_id, cid)
    assert retried.status == WorkloadStatus.DELETING
    assert retried.pending_op is not None and retried.pending_op != reap.id
