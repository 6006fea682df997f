"""A create decided on what its process read for a create in the last second
(infra.table.repository.CreateReadsCache): it reads nothing before its transaction,
and yet never lets through what the table as it is refuses, nor refuses what it
allows. "Another process" here is a second Repository on the same table, with
reads of its own."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import pytest

from bench.meter import TableMeter
from infra.table.repository import Repository
from services.deps import Deps
from shared.clock import parse_iso, utc_now
from shared.models import ClusterStatus
from tests.fixtures.corral import Api, Tenant, error_of, make_tenant


def _another_process(deps: Deps) -> Repository:
    return Repository(deps.repo.db)


def _holding(tenant: Tenant, deps: Deps) -> None:
    """Creates until this process holds what the next create needs: its first create
    reads the summary's occupied shards, then samples them (a read more); the next
    one reads its sample, and holds it with the cluster and the egg."""
    for name in ("first", "second"):
        answer = tenant.create(name=name)
        assert answer.status_code == 202, answer.text
    held = deps.repo.create_cache.held(tenant.cluster["id"], tenant.egg["id"])
    assert held is not None, "the next create would read afresh: the test would prove nothing"


def test_a_create_soon_after_another_reads_nothing_before_its_transaction(
    tenant: Tenant, deps: Deps
) -> None:
    _holding(tenant, deps)
    meter = TableMeter(deps.repo.db.client)
    answer = tenant.create(name="third")
    assert answer.status_code == 202, answer.text
    assert dict(meter.reading.calls) == {"transact_write_items": 1}


def _suspend(repo: Repository, cluster_id: str) -> None:
    repo.clusters.set_status(cluster_id, ClusterStatus.SUSPENDED, utc_now())


def _allow_no_egg(repo: Repository, cluster_id: str) -> None:
    repo.clusters.update(cluster_id, utc_now(), egg_ids=())


@pytest.mark.parametrize(
    ("change", "refusal"),
    [(_suspend, (403, "invalid_cluster")), (_allow_no_egg, (400, "egg_not_allowed"))],
)
def test_a_cluster_changed_elsewhere_refuses_the_next_create_at_once(
    tenant: Tenant,
    deps: Deps,
    change: Callable[[Repository, str], None],
    refusal: tuple[int, str],
) -> None:
    """Changed straight in the table: the tenant key's principal (cached by auth)
    still says active, so only the create's own reads and conditions can refuse it."""
    _holding(tenant, deps)
    change(_another_process(deps), tenant.cluster["id"])
    answer = tenant.create(name="third")
    assert error_of(answer) == refusal, answer.text


def test_a_plan_lifetime_changed_elsewhere_holds_for_the_next_create(
    tenant: Tenant, deps: Deps
) -> None:
    _holding(tenant, deps)
    other = _another_process(deps)
    cluster = other.clusters.get(tenant.cluster["id"])
    other.clusters.update(cluster.id, utc_now(), plan=replace(cluster.plan, max_lifetime=600))
    answer = tenant.create(name="third")
    assert answer.status_code == 202, answer.text
    expires_at = parse_iso(answer.json["container"]["expires_at"])
    assert expires_at is not None and expires_at <= utc_now() + timedelta(seconds=600)


def test_room_made_elsewhere_is_not_refused_on_what_was_held(api: Api, deps: Deps) -> None:
    """The cluster is full as this process last read it (its refusal read it afresh);
    another process raises its plan: the next create, refused on what was held, is
    decided again on fresh reads, and placed."""
    tenant = make_tenant(api, containers=2)
    _holding(tenant, deps)
    full = tenant.create(name="third")
    assert error_of(full) == (409, "container_limit_reached"), full.text
    held = deps.repo.create_cache.held(tenant.cluster["id"], tenant.egg["id"])
    assert held is not None and held.cluster.container_count == 2
    other = _another_process(deps)
    cluster = other.clusters.get(tenant.cluster["id"])
    other.clusters.update(cluster.id, utc_now(), plan=replace(cluster.plan, max_containers=3))
    answer = tenant.create(name="fourth")
    assert answer.status_code == 202, answer.text


def test_an_egg_changed_in_this_process_reaches_the_next_create(
    api: Api, tenant: Tenant, deps: Deps
) -> None:
    _holding(tenant, deps)
    defaults = {"cpu_cores": 0.5, "ram_mb": 96, "storage_mb": 256, "io": 100}
    changed = api.admin("PATCH", f"/eggs/{tenant.egg['id']}", {"defaults": defaults})
    assert changed.status_code == 200, changed.text
    answer = tenant.create(name="third")
    assert answer.status_code == 202, answer.text
    assert answer.json["container"]["resources"]["ram_mb"] == 96


def test_the_held_summary_counts_this_process_placements(api: Api, deps: Deps) -> None:
    """Two hosts with room for two containers each, placed best fit first: the first
    two creates fill one host, and the third, on held reads, goes to the other host
    at its first try (one transaction): the held summary counts the first two."""
    capacity = {"cpu_cores": 1, "ram_mb": 128, "storage_mb": 100000}
    tenant = make_tenant(api, host={"capacity": capacity})
    api.make_host(capacity=capacity)
    _holding(tenant, deps)
    hosts = {w.host_id for w in deps.repo.workloads.in_cluster(tenant.cluster["id"])}
    assert len(hosts) == 1
    deps.repo.db.stats.reset()
    third = tenant.create(name="third")
    assert third.status_code == 202, third.text
    assert deps.repo.db.stats.calls == {"transact_write_items": 1}
    hosts = {w.host_id for w in deps.repo.workloads.in_cluster(tenant.cluster["id"])}
    assert len(hosts) == 2
