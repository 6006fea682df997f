"""The simulated engine (devstack/sim_engine.py) answers what Corral's periodic passes
ask a Docker host, for many hosts in one process: the spread host checks and health
collection run against it, and its failing host delays and marks only itself. It also
answers what Corral's own Docker driver sends for a container's whole life: a
container created through the API on a simulated host runs there, stops, starts
again and is removed, with its volume and its cluster's network; a simulated failure
leaves the provision to retry."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

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


def _settled(api: Api, deps: Deps, container_id: str) -> dict[str, Any]:
    run_jobs(deps)
    view: dict[str, Any] = api.tenant("GET", f"/containers/{container_id}").json
    return view


def test_a_container_lives_its_whole_life_on_a_simulated_engine(
    api: Api, deps: Deps, worker_context: context.WorkerContext
) -> None:
    with SimulatedEngine(1, latency_s=0.001) as engine:
        tenant = make_tenant(api, engine.address(0), containers=5)
        created = tenant.create(name="web")
        assert created.status_code == 202, created.text
        container_id = created.json["container"]["id"]
        assert _settled(api, deps, container_id)["status"] == "running"
        [made] = engine.containers[0].values()
        assert (made.labels["io.corral.workload"], made.running) == (container_id, True)
        assert len(engine.volumes[0]) == 1 and len(engine.networks[0]) == 1

        for signal, status, running in (("stop", "stopped", False), ("start", "running", True)):
            resp = api.tenant("POST", f"/containers/{container_id}/power", {"signal": signal})
            assert resp.status_code == 202, resp.text
            assert _settled(api, deps, container_id)["status"] == status
            assert made.running is running

        assert api.tenant("DELETE", f"/containers/{container_id}").status_code == 202
        assert _settled(api, deps, container_id)["status"] == "deleted"
        assert engine.containers[0] == {} and engine.volumes[0] == set()
        assert engine.networks[0] == {}

        # every call fails from now on: a 500 is a host's passing trouble, the
        # provision waits for its retry and nothing was made
        engine.failure_rate = 1.0
        failing = tenant.create(name="unlucky")
        assert failing.status_code == 202, failing.text
        assert _settled(api, deps, failing.json["container"]["id"])["status"] == "provisioning"
        assert engine.containers[0] == {}
