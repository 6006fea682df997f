"""Following the event log as gunicorn serves it (the ASGI app, handlers.asgi): an
interrupted follow resumed with Last-Event-ID sees every event exactly once, and
revoking a key ends its open follows and waits within a second."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import falcon.testing

from handlers.app import ADMIN_BASE, PUBLIC_BASE
from handlers.asgi import Server
from services.deps import Deps
from shared.changes import workload_change
from shared.clock import iso, utc_now
from tests.fixtures.corral import Api, Tenant

CHANGES = 1000


@dataclass
class Sse:
    """A server-sent event stream read as it comes."""

    result: falcon.testing.StreamedResult
    buffer: bytes = b""
    ended: list[dict[str, Any]] = field(default_factory=list)

    async def events(self, timeout: float) -> list[dict[str, str]]:
        """The next complete events (at least one unless `timeout` passes)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.buffer += await self.result.stream.read()
            if b"\n\n" in self.buffer:
                complete, _, self.buffer = self.buffer.rpartition(b"\n\n")
                parsed = [_parse(block) for block in complete.split(b"\n\n")]
                found = [p for p in parsed if "data" in p]
                if found:
                    return found
            await asyncio.sleep(0.01)
        return []


def _parse(block: bytes) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in block.decode().split("\n"):
        name, sep, value = line.partition(": ")
        if sep and not line.startswith(":"):
            fields[name] = value
    return fields


@asynccontextmanager
async def follow(
    conductor: falcon.testing.ASGIConductor, path: str, key: str, **headers: str
) -> AsyncIterator[Sse]:
    async with conductor.simulate_get_stream(
        path,
        params={"follow": "1"},
        headers={"Authorization": f"Bearer {key}", **headers},
    ) as result:
        assert result.status_code == 200, result.status
        assert result.headers["content-type"].startswith("text/event-stream")
        yield Sse(result)


def test_a_follow_resumed_with_last_event_id_sees_every_event_once(
    api: Api, tenant: Tenant, deps: Deps
) -> None:
    cid = tenant.create().json["container"]["id"]
    key = api.tenant_key
    assert key is not None
    first_ids: list[int] = []
    second_ids: list[int] = []

    # The changes are lease renewals committed as the API commits them (the store's
    # entry, its event appended in the same transaction), without the HTTP round trip
    # and the read after it: the follow is what is under test here.
    workload = deps.repo.workloads.get(tenant.cluster["id"], cid)

    def renew_many() -> None:
        for n in range(CHANGES):
            now = utc_now()
            expires = now + timedelta(seconds=1000 + n)
            renewal = deps.repo.workloads.lease(workload, expires, now)
            change = workload_change("renewed", workload, after={"expires_at": iso(expires)})
            deps.repo.db.transact([renewal], events=[change])

    async def scenario() -> None:
        async with falcon.testing.ASGIConductor(Server(deps)) as conductor:
            changes = asyncio.create_task(asyncio.to_thread(renew_many))
            last_id = ""
            async with follow(conductor, f"{PUBLIC_BASE}/events", key) as sse:
                while len(first_ids) < CHANGES // 3:
                    found = await sse.events(timeout=10)
                    assert found, "no event within 10 s"
                    assert all("sequence" in json.loads(e["data"]) for e in found), found[-3:]
                    first_ids.extend(json.loads(e["data"])["sequence"] for e in found)
                    last_id = found[-1]["id"]
            # Interrupted: the changes go on; resume after the last event received.
            resumed = {"Last-Event-ID": last_id}
            async with follow(conductor, f"{PUBLIC_BASE}/events", key, **resumed) as sse:
                # cluster, key, workload and operation created, then the renewals
                while len(first_ids) + len(second_ids) < 4 + CHANGES:
                    found = await sse.events(timeout=10)
                    assert found, f"stalled at {len(first_ids) + len(second_ids)} events"
                    assert all("sequence" in json.loads(e["data"]) for e in found), found
                    second_ids.extend(json.loads(e["data"])["sequence"] for e in found)
            await changes

    asyncio.run(scenario())
    seen = first_ids + second_ids
    assert seen == list(range(1, CHANGES + 5)), "each event exactly once, in order"
    assert first_ids and second_ids


def test_revoking_a_key_ends_its_follows_and_waits_within_a_second(
    api: Api, tenant: Tenant, deps: Deps
) -> None:
    key = api.tenant_key
    assert key is not None
    made = tenant.create().json  # no worker runs: its operation stays queued
    operation_id = made["operation"]["id"]
    key_id = api.tenant("GET", "/events").json["events"][1]["resource"]["id"]

    async def scenario() -> None:
        async with falcon.testing.ASGIConductor(Server(deps)) as conductor:

            async def waited() -> tuple[int, dict[str, Any]]:
                async with conductor.simulate_get_stream(
                    f"{PUBLIC_BASE}/operations/{operation_id}/wait",
                    params={"timeout": "30"},
                    headers={"Authorization": f"Bearer {key}"},
                ) as result:
                    body = b""
                    while not body.endswith(b"}"):
                        body += await result.stream.read()
                        await asyncio.sleep(0.01)
                    return result.status_code, json.loads(body)

            wait = asyncio.create_task(waited())
            async with follow(conductor, f"{PUBLIC_BASE}/events", key) as sse:
                assert await sse.events(timeout=5)  # following
                await asyncio.sleep(0.2)  # the wait is parked
                assert not wait.done()
                revoked_at = time.monotonic()
                path = f"/clusters/{tenant.cluster['id']}/keys/{key_id}"
                resp = await asyncio.to_thread(api.admin, "DELETE", path)
                assert resp.status_code == 204, resp.text
                # The revocation's own event (key.revoked) may come first; then the end.
                ended: list[dict[str, str]] = []
                while not ended or ended[-1]["event"] != "end":
                    found = await sse.events(timeout=max(revoked_at + 2 - time.monotonic(), 0))
                    assert found, f"the follow did not end: {ended}"
                    ended += found
                assert json.loads(ended[-1]["data"]) == {"reason": "revoked"}
                status, answer = await asyncio.wait_for(wait, timeout=2)
                assert time.monotonic() - revoked_at < 1.0
                assert (status, answer["error"]["code"]) == (401, "unauthorized")
            again = await conductor.simulate_get(
                f"{PUBLIC_BASE}/events", headers={"Authorization": f"Bearer {key}"}
            )
            assert again.status_code == 401
            operator = await conductor.simulate_get(
                f"{ADMIN_BASE}/events",
                params={"resource": key_id},
                headers={"Authorization": f"Bearer {api.operator_key}"},
            )
            assert [e["type"] for e in operator.json["events"]] == ["key.created", "key.revoked"]

    asyncio.run(scenario())


def test_the_operators_follow_takes_in_a_cluster_made_after_it_began(api: Api, deps: Deps) -> None:
    made: list[str] = []

    def make_cluster_then_an_egg() -> None:
        made.append(api.make_cluster([])["id"])
        # A change in the platform's log, which the follow already watches: it wakes
        # the follow at once (the new cluster's own log is watched from then on).
        api.make_egg(name="woken")

    async def scenario() -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        async with (
            falcon.testing.ASGIConductor(Server(deps)) as conductor,
            follow(conductor, f"{ADMIN_BASE}/events", api.operator_key) as sse,
        ):
            await sse.events(timeout=2)  # what the logs held before
            await asyncio.to_thread(make_cluster_then_an_egg)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not any(
                e["resource"]["id"] in made for e in seen
            ):
                seen += [json.loads(e["data"]) for e in await sse.events(timeout=1)]
        return seen

    seen = asyncio.run(scenario())
    assert made, "the cluster was not made"
    created = [e for e in seen if e["resource"]["id"] == made[0]]
    assert created and created[0]["type"] == "cluster.created", seen[-5:]
