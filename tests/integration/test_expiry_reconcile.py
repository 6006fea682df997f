"""Expiry and reconciliation against a real dockerd, Redis and DynamoDB Local."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import docker.errors
import pytest
import redis as redis_lib

from infra.drivers.docker.driver import DockerDriver
from infra.table import schema
from infra.table.expression import Expression
from infra.table.workloads import WorkloadStore
from services import operations
from services.deps import Deps
from shared.models import DriverKind, OperationParams, OperationReason, Workload
from shared.runtime import Observed
from shared.states import OperationKind
from tests.fixtures.corral import Tenant, run_jobs
from workers import context
from workers.reconcile import reconcile
from workers.sweeps import sweep_expired

pytestmark = pytest.mark.integration


class HookedDocker(DockerDriver):
    """The real driver; `after_list` runs once right after the host was listed (what
    a worker finishing a job at that moment does)."""

    after_list: Callable[[], None] | None = None

    def list_managed(self) -> list[Observed]:
        seen = super().list_managed()
        hook, HookedDocker.after_list = HookedDocker.after_list, None
        if hook is not None:
            hook()
        return seen


class HookedWorkloads(WorkloadStore):
    """The real store; `after_on_host` runs once right after a host's workloads were
    read (what a tenant's request arriving at that moment does)."""

    after_on_host: Callable[[], None] | None = None

    def on_host(self, host_id: str) -> list[Workload]:
        read = super().on_host(host_id)
        hook, self.after_on_host = self.after_on_host, None
        if hook is not None:
            hook()
        return read


def _running(live: Tenant, deps: Deps, **fields: Any) -> str:
    resp = live.create(**fields)
    assert resp.status_code == 202, resp.text
    run_jobs(deps)
    body = live.api.tenant("GET", f"/containers/{resp.json['container']['id']}").json
    assert body["status"] == "running", body
    return str(body["id"])


def _get(live: Tenant, cid: str) -> dict[str, Any]:
    body: dict[str, Any] = live.api.tenant("GET", f"/containers/{cid}").json
    return body


def test_expired_workload_is_reaped_and_renewed_one_survives(
    live: Tenant, deps: Deps, docker_client: docker.DockerClient
) -> None:
    doomed = _running(live, deps, name="doomed", lifetime=2)
    renewed = _running(live, deps, name="renewed", lifetime=2)
    resp = live.api.tenant("POST", f"/containers/{renewed}/lease", {"lifetime": 3600})
    assert resp.status_code == 200
    time.sleep(2.2)
    assert sweep_expired() == 1
    run_jobs(deps)
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(f"corral-{doomed}")
    body = _get(live, doomed)
    assert body["status"] == "expired"
    reap = live.api.tenant("GET", f"/operations/{body['last_operation']}").json
    assert reap["kind"] == "delete" and reap["params"]["reason"] == "expired"
    assert reap["status"] == "succeeded"
    assert docker_client.containers.get(f"corral-{renewed}").status == "running"
    assert _get(live, renewed)["status"] == "running"
    used = live.api.tenant("GET", "/capacity").json["used"]
    assert used["containers"] == 1 and used["ram_mb"] == _get(live, renewed)["resources"]["ram_mb"]
    assert sweep_expired() == 0  # nothing else is due; the reaped one left the index


def test_container_removed_behind_our_back(
    live: Tenant,
    deps: Deps,
    docker_client: docker.DockerClient,
    worker_context: context.WorkerContext,
) -> None:
    lost = _running(live, deps, name="lost")
    kept = _running(live, deps, name="kept", restart_policy="always")
    wrote = docker_client.containers.get(f"corral-{kept}").exec_run(
        ["/bin/sh", "-c", "echo before-the-loss > /data/note"]
    )
    assert wrote.exit_code == 0, wrote.output
    docker_client.containers.get(f"corral-{lost}").remove(force=True)
    docker_client.containers.get(f"corral-{kept}").remove(force=True)
    report = reconcile()
    assert sorted(report["lost"]) == sorted([lost, kept])
    body = _get(live, lost)
    assert body["status"] == "error" and "disappeared" in body["error"]
    repair = live.api.tenant("GET", f"/operations/{body['last_operation']}").json
    assert repair["kind"] == "repair" and repair["params"]["reason"] == "lost"
    run_jobs(deps)  # the restart policy re-provisions the other one
    assert docker_client.containers.get(f"corral-{kept}").status == "running"
    assert _get(live, kept)["status"] == "running"
    # the recreated container has the data volume the lost one had
    read = docker_client.containers.get(f"corral-{kept}").exec_run(["cat", "/data/note"])
    assert (read.exit_code, read.output) == (0, b"before-the-loss\n")


def test_engine_drift_is_recorded(
    live: Tenant, deps: Deps, docker_client: docker.DockerClient
) -> None:
    cid = _running(live, deps, name="drift")
    docker_client.containers.get(f"corral-{cid}").stop(timeout=1)
    assert reconcile()["drifted"] == [cid]
    assert _get(live, cid)["status"] == "stopped"


def test_redis_flushed_with_operations_in_flight(
    live: Tenant,
    deps: Deps,
    redis_conn: redis_lib.Redis[bytes],
    worker_context: context.WorkerContext,
) -> None:
    ids = [live.create(name=f"q{i}").json["container"]["id"] for i in range(2)]
    redis_conn.flushall()
    later = datetime.now(UTC) + timedelta(minutes=2)
    worker_context.clock = lambda: later
    report = reconcile()
    assert len(report["requeued"]) == 2
    assert reconcile()["requeued"] == []  # their jobs are waiting now: not enqueued twice
    run_jobs(deps)
    assert [_get(live, cid)["status"] for cid in ids] == ["running", "running"]


def test_workload_the_table_lost_is_adopted(
    live: Tenant, deps: Deps, docker_client: docker.DockerClient
) -> None:
    cid = _running(live, deps, name="adoptee", ram_mb=96, ports=1)
    [allocation] = _get(live, cid)["allocations"]
    # the table forgets it and its port (as an in-memory table does across restarts),
    # counters too
    for pk, sk in (
        (schema.cluster_pk(live.cluster["id"]), schema.workload_sk(cid)),
        (schema.host_pk(live.host["id"]), schema.port_sk(allocation["port"])),
    ):
        deps.repo.db.client.delete_item(
            TableName=deps.settings.table_name, Key={"pk": {"S": pk}, "sk": {"S": sk}}
        )
    used = ("used_ram_mb", "used_cpu_centi", "used_storage_mb", "used_io", "used_ports")
    deps.repo.db.update(
        schema.cluster_pk(live.cluster["id"]),
        schema.META,
        Expression().set_all(dict.fromkeys((*used, "container_count"), 0)),
    )
    deps.repo.db.update(
        schema.host_pk(live.host["id"]),
        schema.META,
        Expression().set_all(dict.fromkeys((*used, "workload_count"), 0)),
    )
    assert reconcile()["adopted"] == [cid]
    body = _get(live, cid)
    assert body["status"] == "running" and body["name"] == "adoptee"
    assert body["resources"]["ram_mb"] == 96
    assert body["allocations"] == [allocation]  # read back from the container's labels
    assert deps.repo.ports.held(live.host["id"]) == {allocation["port"]}
    assert live.api.tenant("GET", "/capacity").json["used"]["ram_mb"] == 96
    adopt = live.api.tenant("GET", f"/operations/{body['last_operation']}").json
    assert adopt["kind"] == "adopt" and adopt["status"] == "succeeded"


def test_unknown_workload_without_cluster_is_removed_after_grace(
    live: Tenant,
    deps: Deps,
    docker_client: docker.DockerClient,
    worker_context: context.WorkerContext,
) -> None:
    from infra.drivers.docker.driver import DockerDriver
    from shared.capacity import Resources
    from shared.runtime import WorkloadSpec

    stray = WorkloadSpec(
        workload_id="stray-1",
        cluster_id="no-such-cluster",
        egg_id=live.egg["id"],
        image="corral/busybox:latest",
        resources=Resources(cpu_centi=10, ram_mb=16),
        name="stray",
    )
    DockerDriver(live.host["address"]).ensure(stray)
    # (the session's dockerd also holds earlier tests' containers, unknown to this table)
    first = reconcile()
    assert "stray-1" in first["orphans"] and "stray-1" not in first["removed"]
    assert docker_client.containers.get("corral-stray-1").status == "created"
    later = datetime.now(UTC) + timedelta(minutes=11)
    worker_context.clock = lambda: later
    assert "stray-1" in reconcile()["removed"]
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get("corral-stray-1")


def test_an_interrupted_repair_converges_when_requeued(
    live: Tenant,
    deps: Deps,
    docker_client: docker.DockerClient,
    worker_context: context.WorkerContext,
) -> None:
    """Issue 12, defect 4: the reconciler began a repair and died before finishing it;
    the re-queued job had no executor (KeyError) and left the container in error."""
    drifted = _running(live, deps, name="drifted")
    lost = _running(live, deps, name="lost")
    docker_client.containers.get(f"corral-{drifted}").stop(timeout=1)
    docker_client.containers.get(f"corral-{lost}").remove(force=True)
    for cid in (drifted, lost):
        workload = deps.repo.workloads.get(live.cluster["id"], cid)
        repair = operations.queued(
            f"op-repair-{cid}",
            workload.cluster_id,
            cid,
            OperationKind.REPAIR,
            OperationParams(reason=OperationReason.DRIFT, was=workload.status),
            datetime.now(UTC),
        )
        deps.repo.begin_operation(workload, repair)  # ...and the reconciler dies here
    later = datetime.now(UTC) + timedelta(minutes=2)
    worker_context.clock = lambda: later

    assert sorted(reconcile()["requeued"]) == sorted(f"op-repair-{c}" for c in (drifted, lost))
    run_jobs(deps)

    assert _get(live, drifted)["status"] == "stopped"
    assert _get(live, drifted)["pending_operation"] is None
    done = live.api.tenant("GET", f"/operations/op-repair-{drifted}").json
    assert done["status"] == "succeeded", done
    gone = _get(live, lost)
    assert gone["status"] == "error" and "disappeared" in gone["error"]


def test_a_provision_finishing_between_the_reads_is_not_recorded_lost(
    live: Tenant,
    deps: Deps,
    docker_client: docker.DockerClient,
    worker_context: context.WorkerContext,
) -> None:
    """Issue 12, defect 5: the host was listed before the table was read, so a
    provision finishing in between looked like a running container its host lost."""
    cid = live.create(name="fresh").json["container"]["id"]
    worker_context.drivers.register(
        DriverKind.DOCKER, lambda host: HookedDocker(host.address, host.tls or None)
    )

    def provision_finishes() -> None:
        assert run_jobs(deps) == 1

    HookedDocker.after_list = provision_finishes

    report = reconcile()

    assert report["lost"] == [] and cid not in report["orphans"], report
    assert _get(live, cid)["status"] == "running"
    assert docker_client.containers.get(f"corral-{cid}").status == "running"


def test_a_racing_tenant_request_skips_one_workload_not_the_pass(
    live: Tenant,
    deps: Deps,
    docker_client: docker.DockerClient,
    worker_context: context.WorkerContext,
) -> None:
    """Issue 12, defect 6: a tenant's request landing between the reconciler's read
    and its repair raised ActionNotAllowed and aborted the whole pass."""
    raced = _running(live, deps, name="raced", restart_policy="always")
    other = _running(live, deps, name="other")
    for cid in (raced, other):
        docker_client.containers.get(f"corral-{cid}").remove(force=True)
    workloads = HookedWorkloads(deps.repo.db)
    workloads.after_on_host = lambda: _stop(live, raced)
    deps.repo.workloads = workloads

    report = reconcile()

    assert report["lost"] == [other], report
    assert _get(live, other)["status"] == "error"
    assert _get(live, raced)["pending_operation"] is not None  # the tenant's stop


def _stop(live: Tenant, cid: str) -> None:
    resp = live.api.tenant("POST", f"/containers/{cid}/power", {"signal": "stop"})
    assert resp.status_code == 202, resp.text
