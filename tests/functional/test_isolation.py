"""A cluster's key reaches only that cluster: another cluster's containers and
operations do not exist for it, whatever the verb."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from services.deps import Deps
from shared.clock import utc_now
from shared.states import WorkloadStatus
from tests.fixtures.corral import Api, Tenant, make_tenant


@dataclass
class Pair:
    api: Api
    a: Tenant
    b: Tenant
    key_a: str
    key_b: str
    b_container: str
    b_operation: str


@pytest.fixture
def pair(api: Api, deps: Deps) -> Pair:
    a = make_tenant(api)
    key_a = api.tenant_key
    a.create(name="a-web")
    b = make_tenant(api)
    key_b = api.tenant_key
    assert key_a and key_b
    created = b.create(name="b-web", ram_mb=128).json
    cid = created["container"]["id"]
    # Settle B's container so that, for B's own key, every verb below would be accepted.
    workload = deps.repo.workloads.get(b.cluster["id"], cid)
    assert workload.pending_op is not None
    op = deps.repo.operations.get(b.cluster["id"], workload.pending_op)
    deps.repo.finish_operation(
        op, workload, status=WorkloadStatus.RUNNING, error=None, now=utc_now()
    )
    return Pair(api, a, b, key_a, key_b, cid, created["operation"]["id"])


def requests_at(pair: Pair) -> list[tuple[str, str, Any]]:
    cid, oid = pair.b_container, pair.b_operation
    return [
        ("GET", f"/containers/{cid}", None),
        ("PATCH", f"/containers/{cid}", {"name": "stolen"}),
        ("PATCH", f"/containers/{cid}", {"resources": {"ram_mb": 16}}),
        ("POST", f"/containers/{cid}/power", {"signal": "stop"}),
        ("POST", f"/containers/{cid}/power", {"signal": "kill"}),
        ("DELETE", f"/containers/{cid}", None),
        ("GET", f"/operations/{oid}", None),
        ("GET", f"/operations/{oid}/wait?timeout=0.2", None),
    ]


def test_another_clusters_container_and_operation_are_not_found(pair: Pair) -> None:
    before = pair.api.tenant("GET", f"/containers/{pair.b_container}", key=pair.key_b).json

    for method, path, body in requests_at(pair):
        path, _, query = path.partition("?")
        resp = pair.api.tenant(method, path, body, key=pair.key_a, query_string=query)
        assert resp.status_code == 404, (method, path, resp.text)
        assert resp.json["error"]["code"] == "not_found", (method, path)

    after = pair.api.tenant("GET", f"/containers/{pair.b_container}", key=pair.key_b).json
    assert after == before
    assert after["pending_operation"] is None
    assert after["name"] == "b-web"


def test_the_owner_could_do_the_same(pair: Pair) -> None:
    """The not_found above comes from the key, not from the requests."""
    resp = pair.api.tenant(
        "POST", f"/containers/{pair.b_container}/power", {"signal": "stop"}, key=pair.key_b
    )
    assert resp.status_code == 202, resp.text
    assert (
        pair.api.tenant("GET", f"/operations/{pair.b_operation}", key=pair.key_b).status_code == 200
    )


def test_lists_and_counters_show_only_the_own_cluster(pair: Pair) -> None:
    a_list = pair.api.tenant("GET", "/containers", key=pair.key_a).json
    b_list = pair.api.tenant("GET", "/containers", key=pair.key_b).json

    assert [c["name"] for c in a_list] == ["a-web"]
    assert [c["name"] for c in b_list] == ["b-web"]
    a_cluster = pair.api.tenant("GET", "/cluster", key=pair.key_a).json
    assert a_cluster["id"] == pair.a.cluster["id"]
    assert a_cluster["used"]["ram_mb"] == 64
    assert pair.api.tenant("GET", "/capacity", key=pair.key_b).json["used"]["ram_mb"] == 128


def test_another_clusters_egg_is_neither_listed_nor_usable(pair: Pair) -> None:
    eggs = pair.api.tenant("GET", "/eggs", key=pair.key_a).json
    assert [e["id"] for e in eggs] == [pair.a.egg["id"]]

    resp = pair.api.tenant(
        "POST", "/containers", {"name": "x", "egg_id": pair.b.egg["id"]}, key=pair.key_a
    )

    assert resp.status_code == 400, resp.text
    assert resp.json["error"]["code"] == "egg_not_allowed"


def test_a_full_cluster_does_not_limit_another(api: Api) -> None:
    a = make_tenant(api, ram_mb=64, containers=1)
    assert a.create().status_code == 202
    assert a.create().json["error"]["code"] == "container_limit_reached"

    b = make_tenant(api, ram_mb=64, containers=1)

    assert b.create().status_code == 202
