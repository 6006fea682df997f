"""Revoking a key ends its open wait and follows within a second on the WSGI app too
(the Lambda entry, a threaded WSGI server), not only on gunicorn's ASGI app
(tests/functional/test_event_follows.py): each pauses on the key's revocation
channel instead of sleeping until its next poll or its cap."""

from __future__ import annotations

import http.client
import json
import threading
import time

from services.deps import Deps
from tests.fixtures.corral import PUBLIC, Api, Tenant
from tests.functional.test_idempotency import served


def test_revoking_a_key_ends_its_wait_and_event_follow_on_the_wsgi_app(
    api: Api, tenant: Tenant, deps: Deps
) -> None:
    made = tenant.create().json  # no worker runs: its operation stays queued
    operation_id = made["operation"]["id"]
    key_id = api.tenant("GET", "/keys/current").json["id"]
    auth = {"Authorization": f"Bearer {api.tenant_key}"}
    ended: dict[str, tuple[float, int, bytes]] = {}
    following = threading.Event()

    def stream(name: str, address: str, path: str) -> None:
        conn = http.client.HTTPConnection(address, timeout=20)
        conn.request("GET", path, headers=auth)
        answer = conn.getresponse()
        body = b""
        while chunk := answer.read1(65536):
            body += chunk
            following.set()
        ended[name] = (time.monotonic(), answer.status, body)
        conn.close()

    with served(deps) as address:
        # The caps (the test settings' wait cap: 5 s) are far from the second allowed.
        clients = [
            threading.Thread(
                target=stream,
                args=("wait", address, f"{PUBLIC}/operations/{operation_id}/wait?timeout=30"),
            ),
            threading.Thread(target=stream, args=("follow", address, f"{PUBLIC}/events?follow=1")),
        ]
        for client in clients:
            client.start()
        assert following.wait(5), "the follow never started"
        time.sleep(0.3)  # the wait is parked
        assert not ended, ended
        revoked_at = time.monotonic()
        path = f"/clusters/{tenant.cluster['id']}/keys/{key_id}"
        assert api.admin("DELETE", path).status_code == 204
        for client in clients:
            client.join(timeout=6)
    wait_at, wait_status, wait_body = ended["wait"]
    follow_at, follow_status, follow_body = ended["follow"]
    assert wait_at - revoked_at < 1.0 and follow_at - revoked_at < 1.0, (
        wait_at - revoked_at,
        follow_at - revoked_at,
    )
    assert wait_status == 401
    assert json.loads(wait_body)["error"]["code"] == "unauthorized"
    assert follow_status == 200
    last = follow_body.strip().split(b"\n\n")[-1]
    assert last == b'event: end\ndata: {"reason": "revoked"}', follow_body[-200:]
