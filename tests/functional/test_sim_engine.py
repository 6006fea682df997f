"""The simulated engine (devstack/sim_engine.py) answers what Corral's periodic passes
ask a Docker host, for many hosts in one process: the spread host checks and health
collection run against it, and its failing host delays and marks only itself."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.sim_engine import SimulatedContainer, SimulatedEngine
from services.deps import Deps
from shared.models import HostStatus
from shared.runtime import LABEL_CLUSTER, LABEL_MANAGED, LABEL_WORKLOAD
from tests.fixtures.corral import Api, make_tenant, run_jobs
from workers import context
from workers.fleet import check_fleet, collect_fleet
from workers.reconcile import reconcile_one_host

HOSTS = 4
FAILING = 3


@pytest.fixture
def engine() -> Iterator[SimulatedEngine]:
    with SimulatedEngine(HOSTS, failing={FAILING}) as running:
        yield running


def test_the_passes_run_against_simulated_hosts(
    api: Api, deps: Deps, worker_context: context.WorkerContext, engine: SimulatedEngine
) -> None:
    tenant = make_tenant(api, address=engine.address(0), ram_mb=100000, containers=50)
    others = [api.make_host(address=engine.address(i))["id"] for i in range(1, HOSTS)]
    host_ids = [tenant.host["id"], *others]
    assert check_fleet()["enqueued"] == HOSTS
    run_jobs(deps)
    statuses = [deps.repo.hosts.get(h).status for h in host_ids]
    assert statuses == [HostStatus.READY] * (HOSTS - 1) + [HostStatus.NOT_READY]
    assert deps.repo.hosts.get(host_ids[0]).images == ("corral/busybox:latest",)

    created = tenant.create(name="a").json["container"]
    deps.jobs.queue.empty()  # its provision job: this test plays the engine's part
    workload = deps.repo.workloads.get(tenant.cluster["id"], created["id"])
    where = host_ids.index(workload.host_id)
    labels = {LABEL_MANAGED: "true", LABEL_WORKLOAD: workload.id}
    engine.put(where, SimulatedContainer(f"c-{workload.id}", f"corral-{workload.id}", labels))
    assert collect_fleet()["enqueued"] == HOSTS
    run_jobs(deps)
    health = deps.repo.workloads.get(tenant.cluster["id"], workload.id).health
    assert health is not None and health.reason is None
    assert health.memory_mb == 7  # usage less the inactive page cache
    # the reconcile of a host lists and inspects its containers through the engine
    stray = {LABEL_MANAGED: "true", LABEL_WORKLOAD: "stray-1", LABEL_CLUSTER: "gone"}
    engine.put(where, SimulatedContainer("c-stray-1", "corral-stray-1", stray))
    assert reconcile_one_host(workload.host_id)["orphans"] == ["stray-1"]
