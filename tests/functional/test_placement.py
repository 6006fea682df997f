"""Placement through the API: best fit, drain, and no host over-committed under concurrency."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import falcon.testing

from services.deps import Deps
from tests.fixtures.corral import Api, make_tenant


def _host_of(deps: Deps, cluster_id: str, container_id: str) -> str:
    return deps.repo.workloads.get(cluster_id, container_id).host_id


def _small_host(api: Api, name: str, ram_mb: int, **extra: Any) -> dict[str, Any]:
    return api.make_host(
        name=name, capacity={"cpu_cores": 8, "ram_mb": ram_mb, "storage_mb": 100000}, **extra
    )


def test_best_fit_prefers_the_tightest_host(api: Api, deps: Deps) -> None:
    tenant = make_tenant(api, ram_mb=100000, containers=50)
    api.admin("DELETE", f"/hosts/{tenant.host['id']}")
    roomy = _small_host(api, "roomy", 4096)
    tight = _small_host(api, "tight", 1024)
    first = tenant.create(name="a", ram_mb=512).json["container"]["id"]
    assert _host_of(deps, tenant.cluster["id"], first) == tight["id"]
    # 512 left on tight: a 768 MB container only fits on roomy
    second = tenant.create(name="b", ram_mb=768).json["container"]["id"]
    assert _host_of(deps, tenant.cluster["id"], second) == roomy["id"]
    status = api.admin("GET", "/status").json
    by_id = {h["id"]: h for h in status["hosts"]}
    assert by_id[tight["id"]]["used"]["ram_mb"] == 512
    assert by_id[roomy["id"]]["used"]["ram_mb"] == 768
    assert status["totals"]["used"]["ram_mb"] == 1280


def test_drained_host_takes_no_new_workloads(api: Api, deps: Deps) -> None:
    tenant = make_tenant(api, ram_mb=100000, containers=50)
    resp = api.admin("POST", f"/nodes/{tenant.host['id']}/drain")
    assert resp.status_code == 200 and resp.json["status"] == "draining"
    refused = tenant.create(name="x")
    assert refused.status_code == 409
    assert refused.json["error"]["code"] == "no_host_available"
    assert "draining" in refused.json["error"]["message"]
    other = _small_host(api, "other", 8192)
    placed = tenant.create(name="y").json["container"]["id"]
    assert _host_of(deps, tenant.cluster["id"], placed) == other["id"]
    assert api.admin("POST", f"/hosts/{tenant.host['id']}/undrain").json["status"] == "ready"


def test_label_constraints_and_engine_mismatch_explain_why(api: Api) -> None:
    tenant = make_tenant(api)
    resp = api.admin(
        "POST",
        f"/templates/{tenant.egg['id']}/instantiate",
        {"cluster_id": tenant.cluster["id"], "name": "t", "constraints": {"zone": "mars"}},
    )
    assert resp.status_code == 409
    assert resp.json["error"] == {
        "code": "no_host_available",
        "message": "No host matches the label constraints.",
    }
    qemu = api.make_egg(name="vm", engine="qemu", image="alpine")
    api.admin(
        "PATCH", f"/clusters/{tenant.cluster['id']}", {"egg_ids": [tenant.egg["id"], qemu["id"]]}
    )
    resp = tenant.create(name="vm", egg_id=qemu["id"])
    assert resp.status_code == 409
    assert resp.json["error"]["message"] == "No host runs the qemu engine."


def test_parallel_creates_never_overcommit_a_host(api: Api, deps: Deps) -> None:
    tenant = make_tenant(api, cpu_cores=100, ram_mb=100000, containers=100)
    api.admin("DELETE", f"/hosts/{tenant.host['id']}")
    hosts = [_small_host(api, f"h{i}", 512) for i in range(2)]

    def create(i: int) -> falcon.testing.Result:
        return tenant.create(name=f"c{i}", ram_mb=128, cpu_cores=0.1)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(create, range(20)))
    codes = sorted(r.status_code for r in results)
    assert codes.count(202) == 8, codes  # 2 hosts x 512 MB / 128 MB
    assert all(
        r.json["error"]["code"] == "no_host_available" for r in results if r.status_code == 409
    )
    assert set(codes) == {202, 409}
    for host in hosts:
        record = deps.repo.hosts.get(host["id"])
        placed = deps.repo.workloads.on_host(host["id"])
        assert record.used.ram_mb == sum(w.resources.ram_mb for w in placed) == 512
        assert record.workload_count == len(placed) == 4
