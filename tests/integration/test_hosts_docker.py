"""Several real dockerd hosts: best fit lands on the right engine, a drained host keeps
its workloads but takes no new ones, and a host that stops answering goes
not_ready, then down, and is avoided."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from devstack.dockerd import Dockerd, start_dockerd
from devstack.image import import_busybox
from services.deps import Deps
from tests.fixtures.corral import Api, make_tenant, run_jobs
from workers import context
from workers.hosts import DOWN_AFTER, check_hosts

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def two_more_dockerds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Dockerd]]:
    handles = [start_dockerd(tmp_path_factory.mktemp(f"dockerd-{i}")) for i in range(2)]
    try:
        for handle in handles:
            client = handle.client()
            import_busybox(client)
            client.close()
        yield handles
    finally:
        for handle in handles:
            handle.stop()


def _register(api: Api, name: str, url: str, ram_mb: int) -> dict[str, Any]:
    return api.make_host(
        address=url, name=name, capacity={"cpu_cores": 4, "ram_mb": ram_mb, "storage_mb": 100000}
    )


def _names_on(handle: Dockerd) -> set[str | None]:
    client = handle.client()
    try:
        return {c.name for c in client.containers.list(all=True)}
    finally:
        client.close()


def test_fleet_of_real_hosts(
    api: Api,
    deps: Deps,
    worker_context: context.WorkerContext,
    two_more_dockerds: list[Dockerd],
) -> None:
    big_engine, small_engine = two_more_dockerds
    tenant = make_tenant(api, big_engine.url, cpu_cores=16, ram_mb=100000, containers=50)
    api.admin("DELETE", f"/hosts/{tenant.host['id']}")
    big = _register(api, "big", big_engine.url, 4096)
    small = _register(api, "small", small_engine.url, 1024)

    # best fit: the small host is the tighter fit
    first = tenant.create(name="first", ram_mb=256).json["container"]["id"]
    run_jobs(deps)
    assert f"corral-{first}" in _names_on(small_engine)
    assert f"corral-{first}" not in _names_on(big_engine)

    # the health check records images and heartbeats
    assert check_hosts() == {big["id"]: "ready", small["id"]: "ready"}
    images = api.admin("GET", "/images").json["images"]
    assert {"image": "corral/busybox:latest", "hosts": sorted([big["id"], small["id"]])} in images

    # drain the small host: its container keeps running, new ones go to the big host
    assert api.admin("POST", f"/hosts/{small['id']}/drain").json["status"] == "draining"
    second = tenant.create(name="second", ram_mb=256).json["container"]["id"]
    run_jobs(deps)
    assert f"corral-{second}" in _names_on(big_engine)
    client = small_engine.client()
    assert client.containers.get(f"corral-{first}").status == "running"
    client.close()
    assert check_hosts()[small["id"]] == "draining"  # healthy, still drained
    api.admin("POST", f"/hosts/{small['id']}/undrain")

    # the big host stops answering: not ready at once, down after a while, avoided meanwhile
    big_engine.stop()
    assert check_hosts()[big["id"]] == "not_ready"
    refused_or_small = tenant.create(name="third", ram_mb=256)
    third = refused_or_small.json["container"]["id"]
    assert deps.repo.workloads.get(tenant.cluster["id"], third).host_id == small["id"]
    last_heartbeat = deps.repo.hosts.get(big["id"]).last_heartbeat
    assert last_heartbeat is not None
    later = last_heartbeat + DOWN_AFTER + timedelta(seconds=1)
    worker_context.clock = lambda: later
    assert check_hosts()[big["id"]] == "down"
    node = api.admin("GET", f"/nodes/{big['id']}").json
    assert node["status"] == "down" and node["health"] == "down"
    status = api.admin("GET", "/status").json
    assert {h["name"]: h["status"] for h in status["hosts"]} == {"big": "down", "small": "ready"}

    # a host with workloads is not removed unless forced
    refused = api.admin("DELETE", f"/hosts/{small['id']}")
    assert refused.status_code == 409 and refused.json["error"]["code"] == "host_in_use"
