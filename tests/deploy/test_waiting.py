"""No tenant can stall the API: under gunicorn as production runs it, parked waits
hold no thread, and what one API key may hold open at once is capped with a 429.

The gunicorn of these tests has 1 process with 4 threads and a cap of 3 open
requests per key (tests/deploy/conftest.py); no rq worker runs, so a created
container's operation stays queued and a wait on it parks."""

from __future__ import annotations

import http.client
import json
import select
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis as redis_lib

from infra.open_requests import open_requests_key
from services.deps import Deps
from shared.keys import hash_secret
from tests.deploy.conftest import MAX_OPEN_PER_KEY, WAIT_CAP_SECONDS, Gunicorn
from tests.deploy.events import Request
from tests.fixtures.corral import PUBLIC, Tenant
from tests.functional.test_tenant_reads import settle


class Parked:
    """A request sent on its own connection and not read: it stays open."""

    def __init__(self, server: Gunicorn, path: str, key: str) -> None:
        self.sock = socket.create_connection((server.host, server.port), timeout=30)
        head = f"GET {PUBLIC}{path} HTTP/1.1\r\nHost: corral\r\nAuthorization: Bearer {key}\r\n"
        self.sock.sendall(f"{head}\r\n".encode())

    def answered(self) -> bool:
        return bool(select.select([self.sock], [], [], 0)[0])

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def parked() -> Iterator[list[Parked]]:
    opened: list[Parked] = []
    yield opened
    for request in opened:
        request.close()


def eventually(check: Callable[[], bool], what: str, seconds: float = 4.0) -> None:
    """Poll `check` (another process must act first); well inside the wait cap."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def key_id(deps: Deps, secret: str) -> str:
    key = deps.repo.keys.find(hash_secret(secret))
    assert key is not None
    return key.id


def park_up_to_the_cap(
    server: Gunicorn, deps: Deps, redis_conn: redis_lib.Redis[bytes], key: str, op_id: str,
    parked: list[Parked],
) -> list[Parked]:  # fmt: skip
    """Park as many waits of `key` as it may hold, and return once all are counted."""
    mine = [
        Parked(server, f"/operations/{op_id}/wait?timeout={WAIT_CAP_SECONDS}", key)
        for _ in range(MAX_OPEN_PER_KEY)
    ]
    parked += mine
    counted = open_requests_key(key_id(deps, key))
    eventually(lambda: redis_conn.zcard(counted) == MAX_OPEN_PER_KEY, "the waits to park")
    return mine


def get(server: Gunicorn, path: str, key: str | None = None) -> tuple[int, dict[str, str], Any]:
    headers = {"Authorization": [f"Bearer {key}"]} if key else {}
    resp = server.call(Request("GET", path, headers=headers))
    return resp.status, resp.headers, json.loads(resp.body) if resp.body else None


def test_a_key_over_its_cap_gets_429_with_retry_after_and_another_key_does_not(
    gunicorn: Gunicorn, tenant: Tenant, deps: Deps, redis_conn: redis_lib.Redis[bytes],
    parked: list[Parked],
) -> None:  # fmt: skip
    created = tenant.create().json
    op_id, container_id = created["operation"]["id"], created["container"]["id"]
    key = tenant.api.tenant_key
    assert key is not None
    other_key = tenant.api.make_key(tenant.cluster["id"], "other")
    park_up_to_the_cap(gunicorn, deps, redis_conn, key, op_id, parked)

    waits = (f"/operations/{op_id}/wait?timeout=1", f"/containers/{container_id}/logs?follow=1")
    for path in waits:
        status, headers, body = get(gunicorn, PUBLIC + path, key)
        assert status == 429, body
        assert body["error"]["code"] == "too_many_requests"
        assert 1 <= int(headers["retry-after"]) <= WAIT_CAP_SECONDS
    status, _, body = get(gunicorn, f"{PUBLIC}/operations/{op_id}/wait?timeout=0.2", other_key)
    assert (status, body["status"]) == (200, "queued")
    # A read that does not wait is not capped.
    assert get(gunicorn, f"{PUBLIC}/operations/{op_id}", key)[0] == 200
    assert not any(request.answered() for request in parked)


def test_a_client_that_hangs_up_frees_its_slot_at_once(
    gunicorn: Gunicorn, tenant: Tenant, deps: Deps, redis_conn: redis_lib.Redis[bytes],
    parked: list[Parked],
) -> None:  # fmt: skip
    op_id = tenant.create().json["operation"]["id"]
    key = tenant.api.tenant_key
    assert key is not None
    first, *others = park_up_to_the_cap(gunicorn, deps, redis_conn, key, op_id, parked)
    wait = f"{PUBLIC}/operations/{op_id}/wait?timeout=0.1"
    assert get(gunicorn, wait, key)[0] == 429

    first.close()

    eventually(lambda: get(gunicorn, wait, key)[0] == 200, "the slot to free", seconds=2.0)
    # Freed by the hang-up, not by the end of the other waits.
    assert not any(request.answered() for request in others)


def test_health_and_cluster_answer_while_more_waits_are_parked_than_threads(
    gunicorn: Gunicorn, tenant: Tenant, deps: Deps, redis_conn: redis_lib.Redis[bytes],
    parked: list[Parked],
) -> None:  # fmt: skip
    op_id = tenant.create().json["operation"]["id"]
    keys = [tenant.api.make_key(tenant.cluster["id"], f"k{n}") for n in range(4)]
    for key in keys:  # 4 keys x 3 waits: 12 parked, and gunicorn has 4 threads
        park_up_to_the_cap(gunicorn, deps, redis_conn, key, op_id, parked)

    for _ in range(5):
        assert get(gunicorn, "/health")[0] == 200
        assert get(gunicorn, f"{PUBLIC}/cluster", keys[0])[0] == 200

    assert not any(request.answered() for request in parked)


def test_a_parked_wait_wakes_when_its_operation_finishes(
    gunicorn: Gunicorn, tenant: Tenant, deps: Deps, redis_conn: redis_lib.Redis[bytes]
) -> None:
    created = tenant.create().json
    op_id = created["operation"]["id"]
    key = tenant.api.tenant_key
    conn = http.client.HTTPConnection(gunicorn.host, gunicorn.port, timeout=30)
    try:
        started = time.monotonic()
        conn.putrequest("GET", f"{PUBLIC}/operations/{op_id}/wait?timeout={WAIT_CAP_SECONDS}")
        conn.putheader("Authorization", f"Bearer {key}")
        conn.endheaders()
        counted = open_requests_key(key_id(deps, str(key)))
        eventually(lambda: redis_conn.zcard(counted) == 1, "the wait to park")

        settle(deps, tenant.cluster["id"], created["container"]["id"], publish=True)
        resp = conn.getresponse()
        body = json.loads(resp.read())

        assert (resp.status, body["status"]) == (200, "succeeded")
        assert time.monotonic() - started < WAIT_CAP_SECONDS - 1
        assert redis_conn.zcard(counted) == 0
        # The connection is kept alive after a wait.
        conn.request("GET", "/health")
        assert conn.getresponse().status == 200
    finally:
        conn.close()
