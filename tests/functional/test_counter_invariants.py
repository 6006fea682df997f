"""Whatever a tenant sends, in whatever order, and whatever the operator does to the
eggs meanwhile, no used counter of a cluster or a host goes below zero or past its
limit, and each equals what the live containers hold (issue 12: a resize after the
egg was deleted drove used.cpu_cores to -100 and over-committed the pool).

A hypothesis state machine drives the public API of the app on DynamoDB Local: create,
resize, delete, the operator deleting an egg, and the worker finishing an operation
(recorded through the repository as the worker does; no container engine is needed).
Each example starts with a fresh cluster, its eggs, a host and a key, and drains its
host at the end."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any

import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from infra.table.placement import lags
from services.deps import Deps
from services.operations import queued
from shared.capacity import RESOURCE_FIELDS
from shared.clock import utc_now
from shared.errors import Conflict
from shared.models import OperationParams
from shared.states import OperationKind, WorkloadStatus
from tests.fixtures.corral import Api, make_tenant

PLAN = {
    "cpu_cores": 2,
    "ram_mb": 512,
    "storage_mb": 2048,
    "io": 1000,
    "ports": 4,
    "databases": 2,
    "backups": 2,
    "containers": 3,
}
# Tighter than the plan in RAM, so the host's own guard is reached too.
HOST_CAPACITY = {"cpu_cores": 3, "ram_mb": 384, "storage_mb": 100_000}
GONE = {"deleted", "expired"}
# What a tenant may be told; anything else (a 500 above all) fails the test.
REFUSALS = {
    "invalid_input",
    "below_minimum",
    "egg_not_allowed",
    "capacity_exceeded",
    "container_limit_reached",
    "no_host_available",
    "action_not_allowed",
    "not_found",  # a resize or delete of a container the sequence deleted already
}

CORES = st.sampled_from([-100, -1, -0.01, 0, 0.01, 0.1, 0.5, 1, 1.5, 2, 3])
AMOUNTS = st.sampled_from([-100_000, -1, 0, 1, 5, 6, 16, 64, 256, 512]) | st.integers(
    -(10**6), 10**6
)
COUNTS = st.integers(-3, 5)
# What fits most of the time, so that containers exist to resize and delete.
FITTING = st.fixed_dictionaries(
    {},
    optional={
        "cpu_cores": st.sampled_from([0.1, 0.25, 0.5, 1]),
        "ram_mb": st.sampled_from([16, 64, 128]),
        "storage_mb": st.sampled_from([0, 256, 1024]),
        "ports": st.integers(0, 2),
    },
)
RESOURCES = st.fixed_dictionaries(
    {},
    optional={
        "cpu_cores": CORES,
        "ram_mb": AMOUNTS,
        "storage_mb": AMOUNTS,
        "io": st.integers(-10, 1000),
        "ports": COUNTS,
        "databases": COUNTS,
        "backups": COUNTS,
    },
)


def tenancy(api: Api, deps: Deps) -> type[RuleBasedStateMachine]:
    """The state machine, over this test's app and repository."""

    class Tenancy(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.eggs = [
                api.make_egg(name="small", minimum={"cpu_cores": 0.1, "ram_mb": 16})["id"],
                api.make_egg(
                    name="large",
                    minimum={"cpu_cores": 0.5, "ram_mb": 128},
                    defaults={"cpu_cores": 0.5, "ram_mb": 128},
                )["id"],
            ]
            self.host = api.make_host(capacity=HOST_CAPACITY)["id"]
            self.cluster = api.make_cluster(self.eggs, **PLAN)["id"]
            self.key = api.make_key(self.cluster)
            self.allowed = list(self.eggs)
            self.containers: list[str] = []

        def tenant(self, method: str, path: str, body: Any = None) -> Any:
            resp = api.tenant(method, path, body, key=self.key)
            if resp.status_code >= 300:
                assert resp.status_code < 500, resp.text
                assert resp.json["error"]["code"] in REFUSALS, resp.text
            return resp

        @rule(egg=st.integers(0, 1), resources=FITTING | RESOURCES)
        def create(self, egg: int, resources: dict[str, Any]) -> None:
            body = {"name": f"c{len(self.containers)}", "egg_id": self.eggs[egg]} | resources
            resp = self.tenant("POST", "/containers", body)
            if resp.status_code == 202:
                self.containers.append(resp.json["container"]["id"])

        @precondition(lambda self: self.containers)
        @rule(data=st.data(), resources=RESOURCES)
        def resize(self, data: st.DataObject, resources: dict[str, Any]) -> None:
            cid = data.draw(st.sampled_from(self.containers))
            self.tenant("PATCH", f"/containers/{cid}", {"resources": resources})

        @precondition(lambda self: self.containers)
        @rule(data=st.data())
        def delete(self, data: st.DataObject) -> None:
            cid = data.draw(st.sampled_from(self.containers))
            resp = self.tenant("DELETE", f"/containers/{cid}")
            assert resp.status_code in (202, 404, 409), resp.text

        @precondition(lambda self: self.allowed)
        @rule(data=st.data())
        def operator_deletes_an_egg(self, data: st.DataObject) -> None:
            egg = data.draw(st.sampled_from(self.allowed))
            self.allowed.remove(egg)
            resp = api.admin("PATCH", f"/clusters/{self.cluster}", {"egg_ids": self.allowed})
            assert resp.status_code == 200, resp.text
            resp = api.admin("DELETE", f"/eggs/{egg}")
            assert resp.status_code == 204, resp.text

        @precondition(lambda self: self.containers)
        @rule()
        def worker_finishes(self) -> None:
            """Every operation in flight ends, as the worker records a success."""
            for cid in self.containers:
                workload = deps.repo.workloads.get(self.cluster, cid)
                if workload.pending_op is None:
                    continue
                operation = deps.repo.operations.get(self.cluster, workload.pending_op)
                gone = operation.kind is OperationKind.DELETE
                deps.repo.finish_operation(
                    operation,
                    workload,
                    status=WorkloadStatus.DELETED if gone else WorkloadStatus.RUNNING,
                    error=None,
                    now=utc_now(),
                    release=gone,
                )

        @invariant()
        def cluster_counters_hold(self) -> None:
            capacity = self.tenant("GET", "/capacity").json
            used, totals = capacity["used"], capacity["totals"]
            live = [c for c in self.tenant("GET", "/containers").json if c["status"] not in GONE]
            for field in RESOURCE_FIELDS:
                assert 0 <= used[field] <= totals[field], (field, capacity)
                held = sum(c["resources"][field] for c in live)
                assert abs(used[field] - held) < 1e-6, (field, used, live)
            assert 0 <= used["containers"] == len(live) <= totals["containers"]

        @invariant()
        def host_counters_hold(self) -> None:
            host = api.admin("GET", f"/hosts/{self.host}").json
            for field, value in host["used"].items():
                assert value >= 0, (field, host)
            for field in HOST_CAPACITY:
                assert host["used"][field] <= host["capacity"][field], (field, host)

        @invariant()
        def fleet_views_count_what_the_table_holds(self) -> None:
            """The placement summary's copy of the host, and its workloads by status in
            /status, agree with the host and its workloads themselves."""
            record = deps.repo.hosts.get(self.host)
            [copy] = [h for h in deps.repo.placement.hosts() if h.id == self.host]
            assert not lags(copy, record), (copy, record)
            live = [w for w in deps.repo.workloads.on_host(self.host) if not w.status.is_gone]
            counted = dict(Counter(w.status.value for w in live))
            status = api.admin("GET", "/status").json
            [shown] = [h for h in status["hosts"] if h["id"] == self.host]
            assert shown["workloads"] == counted, (shown["workloads"], counted)

        def teardown(self) -> None:
            # The next example places on its own host only, so each replays the same.
            resp = api.admin("POST", f"/hosts/{self.host}/drain")
            assert resp.status_code == 200, resp.text

    return Tenancy


def test_no_sequence_of_tenant_requests_breaks_a_counter(api: Api, deps: Deps) -> None:
    run_state_machine_as_test(
        tenancy(api, deps),
        settings=settings(
            max_examples=20,
            phases=[Phase.explicit, Phase.reuse, Phase.generate],
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )


def test_the_transaction_itself_keeps_counters_at_or_above_zero(api: Api, deps: Deps) -> None:
    # Issue 12, defect 1: whatever a caller checked before, the write that moves the
    # counters refuses to take one below zero. The API can no longer send such a
    # change, so a workload record claiming more than the counters hold stands in.
    tenant = make_tenant(api)
    cluster_id = tenant.cluster["id"]
    created = tenant.create(ram_mb=64)
    assert created.status_code == 202, created.text
    workload = deps.repo.workloads.get(cluster_id, created.json["container"]["id"])
    assert workload.pending_op is not None
    provision = deps.repo.operations.get(cluster_id, workload.pending_op)
    now = utc_now()
    deps.repo.finish_operation(
        provision, workload, status=WorkloadStatus.RUNNING, error=None, now=now
    )
    workload = deps.repo.workloads.get(cluster_id, workload.id)
    before = api.tenant("GET", "/capacity").json
    claims_more = replace(workload, resources=replace(workload.resources, ram_mb=10_000))
    resize = queued(
        deps.new_operation_id(),
        cluster_id,
        workload.id,
        OperationKind.UPDATE,
        OperationParams(resources=workload.resources),
        now,
    )

    with pytest.raises(Conflict, match="RAM in use would go below zero"):
        deps.repo.begin_operation(
            claims_more,
            resize,
            resources=workload.resources,
            cluster=deps.repo.clusters.get(cluster_id),
            host=deps.repo.hosts.get(workload.host_id),
        )
    with pytest.raises(ClientError, match="ConditionalCheckFailed"):
        deps.repo.db.transact([deps.repo.clusters.release(cluster_id, claims_more.resources, now)])
    with pytest.raises(ClientError, match="ConditionalCheckFailed"):
        deps.repo.db.transact(
            [deps.repo.hosts.release(workload.host_id, claims_more.resources, now)]
        )

    assert api.tenant("GET", "/capacity").json == before
    assert api.tenant("GET", f"/containers/{workload.id}").json["pending_operation"] is None
