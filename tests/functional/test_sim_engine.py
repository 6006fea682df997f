"""The simulated engine (devstack/sim_engine.py, for bench/scale) answers what Corral's
own Docker driver sends for a container's whole life: a container created through the
API on a simulated host runs there, stops, starts again and is removed, with its
volume and its cluster's network; a simulated failure leaves the provision to retry."""

from __future__ import annotations

from typing import Any

from devstack.sim_engine import SimulatedEngine
from services.deps import Deps
from tests.fixtures.corral import Api, make_tenant, run_jobs
from workers import context


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
