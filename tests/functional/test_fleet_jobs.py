"""The scheduled passes over the hosts are spread: the scheduled job enqueues one job
per host, a host whose job is still waiting skips a pass (alone), and each host's
job does that host's share; a host older than the workloads-by-status counters is
recounted once."""

from __future__ import annotations

import pytest

from bench import fleet
from infra.jobs import CHECK_HOST, COLLECT_HOST, RECONCILE_HOST, RECOUNT_HOST
from infra.queue import host_job_id
from infra.table.expression import Expression
from infra.table.placement import PLACEMENT_PK, shard_of_host, shard_sk
from services.deps import Deps
from shared.clock import utc_now
from shared.models import HostStatus, Workload
from tests.fixtures.corral import Api, make_tenant, run_jobs
from workers import context
from workers.fleet import check_fleet, collect_fleet, reconcile_fleet


def _queued(deps: Deps) -> set[str]:
    return set(deps.jobs.queue.get_job_ids())


def _run_all(deps: Deps) -> None:
    """Run what is queued; each host's job leaves nothing behind when it succeeds."""
    run_jobs(deps)
    assert _queued(deps) == set()
    assert deps.jobs.queue.failed_job_registry.count == 0


def test_the_host_check_is_one_job_per_host(
    api: Api, deps: Deps, worker_context: context.WorkerContext
) -> None:
    hosts = [api.make_host(name=f"h{i}")["id"] for i in range(3)]
    assert check_fleet() == {"enqueued": 3, "skipped": 0, "database_hosts": {}}
    assert _queued(deps) == {host_job_id(CHECK_HOST, h) for h in hosts}
    # while a host's job waits, the next pass skips that host and only that host
    assert check_fleet()["skipped"] == 3
    _run_all(deps)
    # nothing answers at unix:///nonexistent.sock: each job recorded its own host
    assert {deps.repo.hosts.get(h).status for h in hosts} == {HostStatus.NOT_READY}
    deps.jobs.enqueue_host_job(CHECK_HOST, hosts[0], timeout_seconds=60)  # still pending
    assert check_fleet() == {"enqueued": 2, "skipped": 1, "database_hosts": {}}
    _run_all(deps)


def test_reconcile_spreads_over_the_hosts_that_are_not_down(
    api: Api, deps: Deps, worker_context: context.WorkerContext
) -> None:
    up, down = api.make_host(name="up")["id"], api.make_host(name="down")["id"]
    host = deps.repo.hosts.get(down)
    deps.repo.hosts.record_health(host, HostStatus.DOWN, utc_now(), heartbeat=None)
    report = reconcile_fleet()
    assert report == {"requeued": [], "enqueued": 1, "skipped": 0, "recounts": 0}
    assert _queued(deps) == {host_job_id(RECONCILE_HOST, up)}
    _run_all(deps)  # the host is unreachable: logged, the job ends well


def test_collection_is_one_job_per_host_and_each_marks_its_own_workloads(
    api: Api, deps: Deps, worker_context: context.WorkerContext
) -> None:
    tenant = make_tenant(api, ram_mb=100000, containers=50)
    other = api.make_host(name="other")["id"]
    created = tenant.create(name="a")
    assert created.status_code == 202, created.text
    workload_id = created.json["container"]["id"]
    deps.jobs.queue.empty()  # the provision job: not this test's
    assert collect_fleet() == {"enqueued": 2, "skipped": 0}
    assert _queued(deps) == {host_job_id(COLLECT_HOST, h) for h in (tenant.host["id"], other)}
    _run_all(deps)
    health = deps.repo.workloads.get(tenant.cluster["id"], workload_id).health
    assert health is not None and health.reason is not None
    assert health.reason.value == "host_unreachable"


def _forget_status_counts(deps: Deps, host_id: str) -> None:
    """Make the host look as it does on a deployment older than the by-status counters:
    its summary entry holds none, and no recount was made."""
    shard = shard_sk(shard_of_host(host_id))
    item = deps.repo.db.get(PLACEMENT_PK, shard) or {}
    names = [n for n in item if n.startswith(f"status:{host_id}:")]
    deps.repo.db.update(PLACEMENT_PK, shard, Expression().remove(*names, f"recounted:{host_id}"))


def _host_counts(api: Api, host_id: str) -> dict[str, int]:
    [view] = [h for h in api.admin("GET", "/status").json["hosts"] if h["id"] == host_id]
    counts: dict[str, int] = view["workloads"]
    return counts


def test_the_reconcile_pass_recounts_the_hosts_older_than_the_status_counters(
    api: Api, deps: Deps, worker_context: context.WorkerContext
) -> None:
    tenant = make_tenant(api, ram_mb=100000, containers=50)
    host_id, other = tenant.host["id"], api.make_host(name="other")["id"]
    host = deps.repo.hosts.get(host_id)
    fleet.load(deps.repo, tenant.cluster["id"], tenant.egg["id"], [host], 30)
    assert tenant.create(name="new").status_code == 202
    deps.jobs.queue.empty()  # the provision job: not this test's
    expected = {"running": 30, "provisioning": 1}
    assert _host_counts(api, host_id) == expected
    _forget_status_counts(deps, host_id)
    assert _host_counts(api, host_id) == {}

    report = reconcile_fleet()
    assert report["recounts"] == 1  # the old host only, not the one registered since
    assert host_job_id(RECOUNT_HOST, host_id) in _queued(deps)
    assert host_job_id(RECOUNT_HOST, other) not in _queued(deps)
    _run_all(deps)
    assert _host_counts(api, host_id) == expected
    assert api.admin("GET", "/stats").json["containers_by_status"] == expected
    assert reconcile_fleet()["recounts"] == 0  # once recounted, never again
    _run_all(deps)


def test_a_recount_refuses_when_a_workload_changed_meanwhile(
    api: Api, deps: Deps, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = make_tenant(api, ram_mb=100000, containers=50)
    host_id = tenant.host["id"]
    assert tenant.create(name="a").status_code == 202
    _forget_status_counts(deps, host_id)
    listed = deps.repo.workloads.on_host

    def listed_while_another_is_created(host: str) -> list[Workload]:
        found = listed(host)
        assert tenant.create(name="meanwhile").status_code == 202
        return found

    monkeypatch.setattr(deps.repo.workloads, "on_host", listed_while_another_is_created)
    assert deps.repo.recount_statuses(host_id) is False
    # the create's own move stands; the recount wrote nothing
    assert _host_counts(api, host_id) == {"provisioning": 1}
    monkeypatch.undo()
    assert deps.repo.recount_statuses(host_id) is True
    assert _host_counts(api, host_id) == {"provisioning": 2}
