"""Event numbers reserved outside the transaction (infra.table.events): commits to one
cluster run side by side and every committed change still has exactly one event; a
refused change leaves voids, not events; a reader never passes a missing number
while it is young, voids it once older than the grace, and a commit that arrives
after its number was voided is sent again at new numbers."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import falcon.testing
import pytest
import redis as redis_lib

from devstack.processes import free_port
from infra.event_numbers import BLOCK, RedisNumbers
from infra.table.events import EXPIRED_RUN, SEQUENCE_SK, EventLog, Numbered, log_pk
from services.deps import Deps
from shared.events import Change
from tests.fixtures.corral import Api, Tenant, error_of, make_tenant
from tests.functional.test_events import all_tenant_events, tenant_events

THREADS = 16
WAIT_SECONDS = 30


def log_items(deps: Deps, cluster_id: str) -> list[dict[str, Any]]:
    """The log's items as the table holds them (events and voids), by number."""
    return list(deps.repo.db.query(log_pk(cluster_id), sk_prefix="EV#", consistent=True))


def test_concurrent_creates_in_one_cluster_each_have_one_event_and_refusals_leave_voids(
    api: Api, deps: Deps
) -> None:
    # The egg's default is 64 MB of RAM: the plan has RAM for 20 containers.
    tenant = make_tenant(
        api, cpu_cores=100, ram_mb=20 * 64, io=1_000_000, storage_mb=1_000_000, containers=50
    )
    start = threading.Barrier(THREADS)

    def create(n: int) -> falcon.testing.Result:
        if n < THREADS:
            start.wait(timeout=WAIT_SECONDS)
        return tenant.create(name=f"c{n}")

    with ThreadPoolExecutor(THREADS) as pool:
        answers = list(pool.map(create, range(2 * THREADS)))

    outcomes = Counter(a.status_code for a in answers)
    assert outcomes == {202: 20, 409: 2 * THREADS - 20}, outcomes
    assert {error_of(a) for a in answers if a.status_code == 409} == {(409, "capacity_exceeded")}
    created = {a.json["container"]["id"] for a in answers if a.status_code == 202}

    events = all_tenant_events(api)
    numbers = [e["sequence"] for e in events]
    assert numbers == sorted(set(numbers)), "an event twice, or out of order"
    made = [e["resource"]["id"] for e in events if e["type"] == "workload.created"]
    assert sorted(made) == sorted(created)  # every committed create once, no refused one

    items = log_items(deps, tenant.cluster["id"])
    assert [int(i["sequence"]) for i in items] == list(range(1, len(items) + 1))  # dense
    voids = [int(i["sequence"]) for i in items if i.get("void")]
    assert voids, "the refused creates left no void"
    assert sorted(numbers + voids) == list(range(1, len(items) + 1))
    # the table's counter reserves the numbers Redis hands out, a block at a time
    counter = deps.repo.db.get(log_pk(tenant.cluster["id"]), SEQUENCE_SK)
    assert counter is not None
    assert len(items) <= int(counter["sequence"]) < len(items) + BLOCK


def renewal(cid: str, lifetime: int) -> Callable[[Api], falcon.testing.Result]:
    return lambda api: api.tenant("POST", f"/containers/{cid}/lease", {"lifetime": lifetime})


def crashed_reservation(log: EventLog, cluster_id: str) -> Numbered:
    """What a process that died between reserving and committing leaves: numbers
    reserved on the log's counter, never written."""
    return log.reserve([Change("workload.renewed", "workload", "lost", cluster_id)])


def test_a_page_stops_in_front_of_a_young_hole_and_a_reader_voids_an_old_one(
    api: Api, tenant: Tenant, deps: Deps, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = deps.repo.db.events
    monkeypatch.setattr(log, "hole_grace_seconds", 3600.0)
    cid = tenant.create().json["container"]["id"]
    before = tenant_events(api, limit=100)
    (hole,) = crashed_reservation(log, tenant.cluster["id"]).events
    assert renewal(cid, 1000)(api).status_code == 200

    young = tenant_events(api, after=before["cursor"], limit=100)
    assert young["events"] == [], "the page passed a missing number"
    assert young["cursor"] == before["cursor"]

    monkeypatch.setattr(log, "hole_grace_seconds", 0.0)
    old = tenant_events(api, after=before["cursor"], limit=100)
    assert [(e["sequence"], e["type"]) for e in old["events"]] == [
        (hole.sequence + 1, "workload.renewed")
    ]
    (voided,) = [i for i in log_items(deps, tenant.cluster["id"]) if i.get("void")]
    assert int(voided["sequence"]) == hole.sequence


def test_a_commit_late_past_the_grace_is_sent_again_after_its_voided_number(
    api: Api, tenant: Tenant, deps: Deps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A renewal stalls between reserving its number and committing (as a process
    paused by the machine would); a later change commits, a reader voids the stalled
    number once the grace has passed, and the stalled renewal, sent at last, finds
    its number taken and commits at a new one: its event comes after."""
    log = deps.repo.db.events
    monkeypatch.setattr(log, "hole_grace_seconds", 3600.0)
    cid = tenant.create().json["container"]["id"]
    reserve = log.reserve
    stalled: list[Numbered] = []
    reserved, released = threading.Event(), threading.Event()

    def reserve_and_stall(changes: list[Change]) -> Numbered:
        numbered = reserve(changes)
        if not stalled:
            stalled.append(numbered)
            reserved.set()
            assert released.wait(WAIT_SECONDS), "the test never released the commit"
        return numbered

    monkeypatch.setattr(log, "reserve", reserve_and_stall)
    with ThreadPoolExecutor(1) as pool:
        late = pool.submit(renewal(cid, 1111), api)
        assert reserved.wait(WAIT_SECONDS), "the renewal never reserved its number"
        (stalled_event,) = stalled[0].events
        assert renewal(cid, 2222)(api).status_code == 200  # commits after the hole
        monkeypatch.setattr(log, "hole_grace_seconds", 0.0)
        read = tenant_events(api, limit=100)["events"]  # voids the stalled number
        assert [e["sequence"] for e in read if e["type"] == "workload.renewed"] == [
            stalled_event.sequence + 1
        ]
        released.set()
        answer = late.result(timeout=WAIT_SECONDS)
    assert answer.status_code == 200, answer.text

    events = all_tenant_events(api)
    renewals = [e for e in events if e["type"] == "workload.renewed"]
    assert len(renewals) == 2, renewals
    assert renewals[0]["sequence"] == stalled_event.sequence + 1
    assert renewals[1]["sequence"] > renewals[0]["sequence"]
    # the later one is the stalled renewal's, for the shorter lifetime it asked
    assert renewals[1]["after"]["expires_at"] < renewals[0]["after"]["expires_at"]
    items = log_items(deps, tenant.cluster["id"])
    assert [int(i["sequence"]) for i in items if i.get("void")] == [stalled_event.sequence]


def test_a_run_of_expired_numbers_is_passed_at_once_without_voids(
    api: Api, tenant: Tenant, deps: Deps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cursor older than the retention meets the numbers whose events the TTL
    removed: far more than commits in flight. The reader passes them, writing nothing."""
    log = deps.repo.db.events
    monkeypatch.setattr(log, "hole_grace_seconds", 3600.0)
    cluster_id = tenant.cluster["id"]
    for item in log_items(deps, cluster_id):  # as if they had expired
        deps.repo.db.delete(item["pk"], item["sk"])
    expired = log.numbers.take(cluster_id, EXPIRED_RUN)
    cid = tenant.create().json["container"]["id"]

    read = tenant_events(api, limit=100)["events"]
    assert [e["resource"]["id"] for e in read if e["type"] == "workload.created"] == [cid]
    assert min(e["sequence"] for e in read) == expired + 1
    assert not any(i.get("void") for i in log_items(deps, cluster_id))


# -- where the numbers come from: Redis, a block the table reserves at a time ----------


def test_redis_hands_out_dense_numbers_and_the_table_reserves_a_block_at_a_time(
    deps: Deps,
) -> None:
    """Threads taking numbers side by side across several blocks get each number once,
    none skipped; the table's counter is written once a block, and is never behind."""
    numbers, stats = deps.repo.db.events.numbers, deps.repo.db.stats
    stats.reset()

    def take_some(thread: int) -> list[int]:
        taken: list[int] = []
        for turn in range(30):
            count = 1 + (thread + turn) % 3
            last = numbers.take("numbered", count)
            taken += range(last - count + 1, last + 1)
        return taken

    with ThreadPoolExecutor(THREADS) as pool:
        taken = [n for part in pool.map(take_some, range(THREADS)) for n in part]

    assert sorted(taken) == list(range(1, len(taken) + 1))  # each once, none skipped
    blocks = -(-len(taken) // BLOCK)  # ceiling division
    assert stats.calls == {"update_item": blocks}, stats.calls
    counter = deps.repo.db.get(log_pk("numbered"), SEQUENCE_SK)
    assert counter is not None and int(counter["sequence"]) == blocks * BLOCK


def test_numbers_go_on_after_a_block_redis_lost_and_readers_void_what_it_skipped(
    api: Api, tenant: Tenant, deps: Deps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis restarted without its data: the next change's numbers come after the
    whole block the table had reserved; the numbers of it never handed out are voided
    by a reader once past the grace, and every event is read."""
    first = tenant.create().json["container"]["id"]
    handed_out = len(log_items(deps, tenant.cluster["id"]))
    for key in deps.redis.scan_iter(match="corral:*:event-numbers:*"):
        deps.redis.delete(key)
    second = tenant.create().json["container"]["id"]

    monkeypatch.setattr(deps.repo.db.events, "hole_grace_seconds", 0.0)
    events = all_tenant_events(api)
    made = [(e["resource"]["id"], e["sequence"]) for e in events if e["type"] == "workload.created"]
    assert [cid for cid, _ in made] == [first, second]
    assert made[1][1] > BLOCK, "the second create took a number of the lost block"
    items = log_items(deps, tenant.cluster["id"])
    voids = [int(i["sequence"]) for i in items if i.get("void")]
    assert voids == list(range(handed_out + 1, BLOCK + 1))


def test_without_redis_numbers_come_from_the_table_and_a_block_behind_them_is_dropped(
    deps: Deps,
) -> None:
    """Redis not answering, a process reserves on the table's counter itself; a block
    Redis still holds is then behind, and when a reader voids one of its numbers the
    commit discards it: the next numbers come after everything. A block still the
    last reserved is kept."""
    numbers = deps.repo.db.events.numbers
    assert numbers.take("fallback", 1) == 1  # the block 1-100
    unreachable = redis_lib.Redis(port=free_port(), socket_connect_timeout=0.5)
    assert RedisNumbers(unreachable, deps.repo.db).take("fallback", 1) == BLOCK + 1
    assert numbers.take("fallback", 1) == 2  # behind: what a reader may void

    numbers.discard("fallback")
    assert numbers.take("fallback", 1) == BLOCK + 2  # a new block, after the table's
    numbers.discard("fallback")
    assert numbers.take("fallback", 1) == BLOCK + 3  # the last reserved: kept
