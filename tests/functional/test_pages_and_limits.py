"""Pages (`limit`, an opaque `cursor`, filters) and per-key rate limits."""

from __future__ import annotations

import time
from typing import Any

import falcon.testing

from infra.table.attributes import to_wire
from infra.table.dynamo import Dynamo
from infra.table.workloads import workload_item
from shared.capacity import Resources
from shared.clock import new_id, utc_now
from shared.models import Engine, Workload
from shared.states import WorkloadStatus
from tests.fixtures.corral import PUBLIC, Api, Tenant

CONTAINERS = 2500


def load_containers(
    dynamo: Dynamo, tenant: Tenant, count: int, *, deleted: bool = True
) -> dict[str, Workload]:
    """`count` containers written straight into the table (BatchWriteItem), half of them
    stopped and, with `deleted`, a tenth of them deleted (which no listing shows)."""
    now = utc_now()
    made: dict[str, Workload] = {}
    for n in range(count):
        status = WorkloadStatus.RUNNING if n % 2 else WorkloadStatus.STOPPED
        if deleted and n % 10 == 0:
            status = WorkloadStatus.DELETED
        workload = Workload(
            id=new_id(),
            cluster_id=tenant.cluster["id"],
            name=f"w{n:05d}",
            egg_id=tenant.egg["id"],
            engine=Engine.DOCKER,
            host_id=tenant.host["id"],
            resources=Resources(cpu_centi=10, ram_mb=16),
            status=status,
            created_at=now,
            updated_at=now,
        )
        made[workload.id] = workload
    items = [{"PutRequest": {"Item": to_wire(workload_item(w))}} for w in made.values()]
    for start in range(0, len(items), 25):
        request: Any = {dynamo.table: items[start : start + 25]}
        while request:
            request = dynamo.client.batch_write_item(RequestItems=request)["UnprocessedItems"]
    return made


def walk(api: Api, path: str, limit: int, **filters: str) -> tuple[list[dict[str, Any]], int]:
    """Every page of a listing, cursor after cursor: the records and the page count.
    The first page's answer is checked against the OpenAPI document (by the fixture's
    client); the rest, thousands of records of the same shape, are not, to keep the
    test fast."""
    unchecked = falcon.testing.TestClient(api.client.app)
    headers = {"Authorization": f"Bearer {api.tenant_key}"}
    records: list[dict[str, Any]] = []
    pages = 0
    cursor: str | None = None
    while True:
        params = filters | {"limit": str(limit)} | ({"cursor": cursor} if cursor else {})
        if cursor is None:
            resp = api.tenant("GET", path, params=params)
        else:
            resp = unchecked.simulate_get(PUBLIC + path, params=params, headers=headers)
        assert resp.status_code == 200, resp.text
        assert len(resp.json) <= limit
        records += resp.json
        pages += 1
        cursor = resp.headers.get("Next-Cursor")
        if cursor is None:
            return records, pages
        assert pages < 100, "the cursors never end"


def test_pages_return_every_container_exactly_once(
    api: Api, tenant: Tenant, dynamo: Dynamo
) -> None:
    made = load_containers(dynamo, tenant, CONTAINERS, deleted=False)
    live = set(made)
    assert len(live) == CONTAINERS
    listed, pages = walk(api, "/containers", 500)
    ids = [c["id"] for c in listed]
    assert len(ids) == len(set(ids)) == len(live)
    assert set(ids) == live
    assert pages >= len(live) // 500


def test_filters_page_and_a_tampered_cursor_is_refused(
    api: Api, tenant: Tenant, dynamo: Dynamo
) -> None:
    made = load_containers(dynamo, tenant, 60)
    # A filter pages too: only the stopped ones whose name begins with w0000.
    stopped, pages = walk(api, "/containers", 2, status="stopped", name_prefix="w0000")
    expected = {
        w.id
        for w in made.values()
        if w.status == WorkloadStatus.STOPPED and w.name.startswith("w0000")
    }
    assert len(expected) == 4 and pages >= 2
    assert {c["id"] for c in stopped} == expected and len(stopped) == len(expected)
    # Without limit or cursor, the whole list, as the reference documents it.
    whole = api.tenant("GET", "/containers").json
    assert len(whole) == len([w for w in made.values() if not w.status.is_gone])
    first = api.tenant("GET", "/containers", params={"limit": "2"})
    cursor = first.headers["Next-Cursor"]
    payload, _, mac = cursor.partition(".")
    flipped = payload[:-1] + ("A" if payload[-1] != "A" else "B")
    for bad in (f"{flipped}.{mac}", "not-a-cursor", cursor + "x"):
        resp = api.tenant("GET", "/containers", params={"cursor": bad})
        assert resp.status_code == 400, resp.text
        assert resp.json["error"]["code"] == "invalid_input"
    # A cursor of one listing is no cursor of another.
    other = api.tenant("GET", "/eggs", params={"cursor": cursor})
    assert other.status_code == 400, other.text
    bad_limit = api.tenant("GET", "/containers", params={"limit": "0"})
    assert bad_limit.status_code == 400


def test_the_rate_limit_answers_429_with_headers_and_recovers(api: Api, tenant: Tenant) -> None:
    per_minute = 60  # one request a second drips back
    plan = {"name": "test", "cpu_cores": 4, "ram_mb": 4096, "storage_mb": 20480,
            "io": 1000, "ports": 10, "databases": 2, "backups": 2, "containers": 5,
            "requests_per_minute": per_minute}  # fmt: skip
    resp = api.admin("PATCH", f"/clusters/{tenant.cluster['id']}", {"plan": plan})
    assert resp.status_code == 200, resp.text
    key = api.make_key(tenant.cluster["id"], "limited")  # a new key reads the new plan
    first = api.tenant("GET", "/capacity", key=key)
    assert first.headers["RateLimit-Limit"] == str(per_minute)
    assert int(first.headers["RateLimit-Remaining"]) == per_minute - 1
    for _ in range(per_minute * 3):
        resp = api.tenant("GET", "/capacity", key=key)
        if resp.status_code == 429:
            break
    assert resp.status_code == 429, "the limit never answered 429"
    assert resp.json["error"]["code"] == "too_many_requests"
    retry_after = int(resp.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    assert resp.headers["RateLimit-Remaining"] == "0"
    assert int(resp.headers["RateLimit-Reset"]) > 0
    # Another key's bucket is its own.
    assert api.tenant("GET", "/capacity").status_code == 200
    time.sleep(retry_after)
    recovered = api.tenant("GET", "/capacity", key=key)
    assert recovered.status_code == 200, recovered.text
    assert "RateLimit-Remaining" in recovered.headers


def test_the_keys_of_one_cluster_share_its_cluster_limit(api: Api, tenant: Tenant) -> None:
    """Minting more keys buys no more requests: past the cluster's limit every key of
    it is refused, however full its own bucket, and the headers name the tighter."""
    cluster_limit = 20
    plan = {"name": "test", "cpu_cores": 4, "ram_mb": 4096, "storage_mb": 20480,
            "io": 1000, "ports": 10, "databases": 2, "backups": 2, "containers": 5,
            "requests_per_minute": 1000, "cluster_requests_per_minute": cluster_limit}  # fmt: skip
    resp = api.admin("PATCH", f"/clusters/{tenant.cluster['id']}", {"plan": plan})
    assert resp.status_code == 200, resp.text
    assert resp.json["plan"]["cluster_requests_per_minute"] == cluster_limit
    keys = [api.make_key(tenant.cluster["id"], f"k{n}") for n in range(2)]
    first = api.tenant("GET", "/capacity", key=keys[0])
    assert first.headers["RateLimit-Limit"] == str(cluster_limit)
    answers = [api.tenant("GET", "/capacity", key=keys[n % 2]) for n in range(cluster_limit + 4)]
    refused = [n for n, a in enumerate(answers) if a.status_code == 429]
    # One cluster bucket: the two keys together get its 20 (give or take what drips
    # back meanwhile, a token every 3 s), where two buckets of their own allow 2000.
    assert refused and refused[0] >= cluster_limit - 2, [a.status_code for a in answers]
    assert {n % 2 for n in refused} == {0, 1}, "both keys are refused"
    last = answers[refused[-1]]
    assert last.json["error"]["code"] == "too_many_requests"
    assert last.headers["RateLimit-Limit"] == str(cluster_limit)
    assert last.headers["RateLimit-Remaining"] == "0"
    assert 1 <= int(last.headers["Retry-After"]) <= 3
    # An operator's key has no cluster: its own bucket only.
    assert api.admin("GET", "/clusters").status_code == 200


def test_operations_page_newest_first(api: Api, tenant: Tenant) -> None:
    made = [tenant.create(name=f"op{n}").json["operation"]["id"] for n in range(3)]
    listed, pages = walk(api, "/operations", 1)
    assert [o["id"] for o in listed] == made[::-1] and pages == 3
    # Without a cursor, the newest 20 as before.
    assert [o["id"] for o in api.tenant("GET", "/operations").json] == made[::-1]
