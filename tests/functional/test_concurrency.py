"""Concurrent requests never over-commit a cluster: the reservation is one conditional
transaction, so of many racing creates or resizes exactly the ones that fit succeed,
and the cluster's counters end equal to the sum of its live containers.

The table is the fixtures' DynamoDB Local, which isolates transactions as DynamoDB
does; the HTTP requests interleave freely between table calls, and that interleaving
(read the cluster, decide, write under conditions) is what is under test.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import falcon.testing

from services.deps import Deps
from shared.capacity import Resources
from shared.clock import utc_now
from shared.states import OperationKind, WorkloadStatus
from tests.fixtures.corral import Api, Tenant, make_tenant

THREADS = 24


def race(calls: list[Callable[[], falcon.testing.Result]]) -> list[falcon.testing.Result]:
    """Run every call at once (one thread each, released together) and return the
    responses in order."""
    start = threading.Barrier(len(calls))

    def run(call: Callable[[], falcon.testing.Result]) -> falcon.testing.Result:
        start.wait(timeout=30)
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def outcomes(responses: list[Any]) -> Counter[str]:
    counted: Counter[str] = Counter()
    for resp in responses:
        assert resp.status_code < 500, resp.text
        if resp.status_code == 202:
            counted["accepted"] += 1
        else:
            assert resp.status_code == 409, resp.text
            counted[resp.json["error"]["code"]] += 1
    return counted


def used_of(api: Api) -> dict[str, Any]:
    return dict(api.tenant("GET", "/cluster").json["used"])


def assert_counters_match_containers(api: Api, tenant: Tenant) -> list[dict[str, Any]]:
    """The cluster's and the host's used counters equal the sum of the live containers."""
    containers = api.tenant("GET", "/containers").json
    total = Resources()
    for container in containers:
        total += Resources.from_api(container["resources"])
    assert used_of(api) == {**total.to_api(), "containers": len(containers)}
    host = api.admin("GET", f"/hosts/{tenant.host['id']}").json
    for name in ("cpu_cores", "ram_mb", "storage_mb"):
        assert host["used"][name] == total.to_api()[name]
    assert host["workload_count"] == len(containers)
    return list(containers)


def settle_all(deps: Deps, cluster_id: str) -> None:
    """Record every pending operation as succeeded, as the worker would (a delete
    gives the container's resources and ports back)."""
    repo = deps.repo
    for workload in repo.workloads.in_cluster(cluster_id):
        if workload.pending_op:
            op = repo.operations.get(cluster_id, workload.pending_op)
            gone = op.kind is OperationKind.DELETE
            assert repo.finish_operation(
                op,
                workload,
                status=WorkloadStatus.DELETED if gone else WorkloadStatus.RUNNING,
                error=None,
                now=utc_now(),
                release=gone,
            )


def test_parallel_creates_stop_exactly_at_the_ram_limit(api: Api) -> None:
    # The egg's default is 64 MB of RAM: the pool has RAM for 7 and slots for 10.
    tenant = make_tenant(
        api, ram_mb=7 * 64, cpu_cores=100, io=1_000_000, storage_mb=1_000_000, containers=10
    )
    responses = race([partial(tenant.create, name=f"c{i}") for i in range(THREADS)])

    counted = outcomes(responses)
    assert counted == {"accepted": 7, "capacity_exceeded": THREADS - 7}
    for resp in responses:
        if resp.status_code == 409:
            assert "RAM" in resp.json["error"]["message"]
    containers = assert_counters_match_containers(api, tenant)
    assert len(containers) == 7
    assert used_of(api)["ram_mb"] == 7 * 64
    accepted_ids = {r.json["container"]["id"] for r in responses if r.status_code == 202}
    assert {c["id"] for c in containers} == accepted_ids


def test_parallel_creates_stop_exactly_at_the_container_limit(api: Api) -> None:
    tenant = make_tenant(
        api, ram_mb=100_000, cpu_cores=100, io=1_000_000, storage_mb=1_000_000, containers=5
    )
    responses = race([partial(tenant.create, name=f"c{i}") for i in range(16)])

    counted = outcomes(responses)
    assert counted == {"accepted": 5, "container_limit_reached": 16 - 5}
    containers = assert_counters_match_containers(api, tenant)
    assert len(containers) == 5


def test_parallel_creates_of_mixed_sizes_never_refuse_what_would_fit(api: Api) -> None:
    """Used counters only grow here, so a refused request must not fit in the final state
    either: a refusal caused by a lost race that left room would show up as one that fits."""
    limit = 500
    tenant = make_tenant(
        api, ram_mb=limit, cpu_cores=100, io=1_000_000, storage_mb=1_000_000, containers=16
    )
    sizes = [random.Random(seed).choice([16, 32, 64, 100, 128, 200]) for seed in range(16)]
    responses = race(
        [partial(tenant.create, name=f"c{i}", ram_mb=ram) for i, ram in enumerate(sizes)]
    )

    counted = outcomes(responses)
    assert set(counted) <= {"accepted", "capacity_exceeded"}
    assert_counters_match_containers(api, tenant)
    final_ram = used_of(api)["ram_mb"]
    accepted = [ram for ram, r in zip(sizes, responses, strict=True) if r.status_code == 202]
    refused = [ram for ram, r in zip(sizes, responses, strict=True) if r.status_code == 409]
    assert final_ram == sum(accepted) <= limit
    assert refused, "the pool should not take every request"
    assert all(final_ram + ram > limit for ram in refused)


def test_parallel_resizes_of_different_containers_stop_at_the_pool(api: Api, deps: Deps) -> None:
    # Eight containers of 64 MB in a pool of 1024 MB: 512 MB free, room to grow four of
    # them by 128 MB, not eight.
    tenant = make_tenant(
        api, ram_mb=1024, cpu_cores=100, io=1_000_000, storage_mb=1_000_000, containers=8
    )
    ids = []
    for i in range(8):
        resp = tenant.create(name=f"c{i}")
        assert resp.status_code == 202, resp.text
        ids.append(resp.json["container"]["id"])
    settle_all(deps, tenant.cluster["id"])

    responses = race(
        [
            partial(api.tenant, "PATCH", f"/containers/{cid}", {"resources": {"ram_mb": 64 + 128}})
            for cid in ids
        ]
    )

    counted = outcomes(responses)
    assert counted == {"accepted": 4, "capacity_exceeded": 4}
    containers = assert_counters_match_containers(api, tenant)
    grown = {c["id"] for c in containers if c["resources"]["ram_mb"] == 192}
    assert grown == {cid for cid, r in zip(ids, responses, strict=True) if r.status_code == 202}
    assert used_of(api)["ram_mb"] == 1024


def test_parallel_changes_to_one_container_accept_exactly_one(api: Api, deps: Deps) -> None:
    """One change at a time per container: of racing PATCH, power and DELETE requests to
    the same container one wins and the rest get action_not_allowed."""
    tenant = make_tenant(api)
    resp = tenant.create()
    cid = resp.json["container"]["id"]
    settle_all(deps, tenant.cluster["id"])

    calls: list[Callable[[], falcon.testing.Result]] = [
        partial(api.tenant, "PATCH", f"/containers/{cid}", {"name": f"n{i}"}) for i in range(6)
    ]
    calls += [lambda: api.tenant("POST", f"/containers/{cid}/power", {"signal": "stop"})] * 6
    calls += [lambda: api.tenant("DELETE", f"/containers/{cid}")] * 6
    responses = race(calls)

    counted: Counter[str | int] = Counter()
    for r in responses:
        assert r.status_code < 500, r.text
        counted[r.json["error"]["code"] if r.status_code >= 400 else r.status_code] += 1
    assert counted == {202: 1, "action_not_allowed": len(calls) - 1}, counted
    assert_counters_match_containers(api, tenant)


def test_parallel_creates_count_cpu_in_exact_hundredths(api: Api) -> None:
    # 0.33 core each in a pool of 1 core: three fit exactly (0.99), a fourth does not.
    tenant = make_tenant(
        api, cpu_cores=1, ram_mb=100_000, io=1_000_000, storage_mb=1_000_000, containers=20
    )
    responses = race([partial(tenant.create, name=f"c{i}", cpu_cores=0.33) for i in range(12)])

    counted = outcomes(responses)
    assert counted == {"accepted": 3, "capacity_exceeded": 9}
    assert_counters_match_containers(api, tenant)
    assert used_of(api)["cpu_cores"] == 0.99
