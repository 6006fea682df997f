"""The placement summary: what choosing a host reads instead of every host.

Shard items, `PLACEMENT` / `HOSTS#<n>` (a host lives in the shard its id hashes to),
and one item `PLACEMENT` / `OCCUPIED` marking the shards a host ever entered. For
each host a shard holds `host:<id>`, what placement filters and sorts on (engines,
status, labels, images, capacity, port range, where it is reached), and its counters
`used:<id>:<dimension>`, `count:<id>` and `status:<id>:<status>`. The counters move in
the same transactions that move the host's own (see `moves`), and the copy is rewritten
in the same transactions that change what it copies (see `describe`).

A create reads a fixed number of items whatever the size of the fleet (see `sample`):
`SAMPLED_SHARDS` occupied shards drawn at random, and it chooses the best fit among
their hosts (among every host on a fleet of at most that many occupied shards; among
about 60 random hosts of 1,000). Only when those hold no host that fits does it read
every shard (`hosts`), strongly consistent. A shard holds about 16 hosts at 1,000
hosts, so what a create parses does not grow with the fleet either, up to a few
thousand hosts.

Which shards are occupied only grows while hosts register, so each process keeps the
set it last read (`Occupied`): a create draws its shards from it and reads them in its
first batch, beside the cluster and the egg (one round trip for all three). The set is
read again (the `OCCUPIED` item, in that first batch, then the shards drawn in a
second) once it is `OCCUPIED_MAX_AGE_S` old, and set from the whole summary whenever a
create reads it all (its sample held no host that fits). A host registered by another
process meanwhile is only left out of the draws until then: never chosen wrongly.

The summary chooses; it does not guard. A host's reservation still checks the host's own
counters, capacity and status, so a summary that lags (a host registered before it
existed, or before the shards were `HOSTS#`; a drift repaired by the host check's
`sync`) costs a retry on another host, never an over-commit."""

from __future__ import annotations

import functools
import json
import random
import threading
import time
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from infra.table.attributes import Item, moment, resources_attrs, resources_from
from infra.table.dynamo import Dynamo, TxEntry
from infra.table.expression import Expression
from shared.capacity import Resources
from shared.clock import iso
from shared.errors import Conflict, CorralError
from shared.models import DriverKind, Engine, Host, HostStatus
from shared.placement import HOST_DIMENSIONS
from shared.states import WorkloadStatus

PLACEMENT_PK = "PLACEMENT"
# Shards spread the writes of concurrent placements over as many items (two creates on
# hosts of different shards never contend) and keep each item small: about 16 hosts per
# shard at 1,000 hosts (~5 KB). Every shard fits one BatchGetItem (100 keys).
PLACEMENT_SHARDS = 64
# How many occupied shards a create draws to choose among their hosts.
SAMPLED_SHARDS = 4
OCCUPIED_SK = "OCCUPIED"
OCCUPIED_KEY = (PLACEMENT_PK, OCCUPIED_SK)
# How long a process draws from the occupied shards it read before reading them again:
# how long a host registered by another process may wait to be drawn.
OCCUPIED_MAX_AGE_S = 30.0
# The counters the summary carries: the host dimensions, and the ports of its range.
COUNTED = (*HOST_DIMENSIONS, "ports")
# Host copies a process keeps parsed (`_copy_from`): a few thousand hosts' worth.
PARSED_COPIES = 8192


@dataclass(frozen=True)
class HostMove:
    """What one transaction moves on one host: its resources and number of workloads
    (the host's counters), and its workloads by status (workloads entering a status
    count +1, leaving it -1; the gone ones are not counted)."""

    resources: Resources = field(default_factory=Resources)
    workloads: int = 0
    statuses: Mapping[str, int] = field(default_factory=dict)

    def __add__(self, other: HostMove) -> HostMove:
        statuses = dict(self.statuses)
        for status, count in other.statuses.items():
            statuses[status] = statuses.get(status, 0) + count
        return HostMove(
            self.resources + other.resources, self.workloads + other.workloads, statuses
        )


def status_change(
    leaving: WorkloadStatus | None, entering: WorkloadStatus | None, count: int = 1
) -> HostMove:
    """`count` workloads leave `leaving` (None: they are new) for `entering` (None: they
    are gone); a gone status is not counted, nor a status a workload stays in."""
    if leaving == entering:
        return HostMove()
    statuses: dict[str, int] = {}
    if leaving is not None and not leaving.is_gone:
        statuses[leaving.value] = -count
    if entering is not None and not entering.is_gone:
        statuses[entering.value] = count
    return HostMove(statuses=statuses)


def shard_sk(shard: int) -> str:
    return f"HOSTS#{shard:02d}"


def shard_of_host(host_id: str) -> int:
    return zlib.crc32(host_id.encode()) % PLACEMENT_SHARDS


def _occupied_attr(shard: int) -> str:
    return f"shard:{shard:02d}"


def every_shard() -> list[tuple[str, str]]:
    return [(PLACEMENT_PK, shard_sk(shard)) for shard in range(PLACEMENT_SHARDS)]


def _info_attr(host_id: str) -> str:
    return f"host:{host_id}"


def _used_attr(host_id: str, dimension: str) -> str:
    return f"used:{host_id}:{dimension}"


def _count_attr(host_id: str) -> str:
    return f"count:{host_id}"


def _recounted_attr(host_id: str) -> str:
    """Present once the host's `status:` counters were set from its workloads (see
    `recount`), or from its start (a host registered since they exist)."""
    return f"recounted:{host_id}"


STATUS_PREFIX = "status:"


def _status_attr(host_id: str, status: str) -> str:
    """The number of a host's workloads in `status`. Kept when the host is deleted
    (its workloads may outlive it, until they are deleted)."""
    return f"{STATUS_PREFIX}{host_id}:{status}"


def placement_info(host: Host) -> Item:
    """What the summary copies of a host (all but its counters)."""
    return {
        "id": host.id,
        "name": host.name,
        "driver": host.driver.value,
        "address": host.address,
        "public_address": host.public_address,
        "engines": [e.value for e in host.engines],
        **resources_attrs("cap", host.capacity),
        "status": host.status.value,
        "labels": dict(host.labels),
        "images": list(host.images),
        "port_range": list(host.port_range) if host.port_range else None,
        "created_at": iso(host.created_at),
    }


def _info_attr_value(host: Host) -> str:
    """`placement_info` as one JSON string: a create reads every host's copy, and one
    string per host parses many times faster than a map of thirty typed values."""
    return json.dumps(placement_info(host), sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class _Copy:
    """A host's copy in the summary, parsed (but for its counters), and the names of its
    counters there."""

    host: Host
    used_attrs: tuple[tuple[str, str], ...]  # (dimension, attribute)
    count_attr: str


@functools.lru_cache(maxsize=PARSED_COPIES)
def _copy_from(value: str) -> _Copy:
    """The host a `host:` attribute holds. A copy changes only when its host does, and a
    create reads some sixty of them on a fleet of 1,000 hosts: each is parsed once per
    process (by its exact text), and only its counters on every read."""
    info: Item = json.loads(value)
    host_id = info["id"]
    created_at = moment(info["created_at"])
    port_range = info.get("port_range")
    host = Host(
        id=host_id,
        name=info["name"],
        driver=DriverKind(info["driver"]),
        address=info["address"],
        public_address=info.get("public_address"),
        engines=tuple(Engine(e) for e in info.get("engines", [])),
        capacity=resources_from("cap", info),
        used=Resources(),
        workload_count=0,
        status=HostStatus(info["status"]),
        labels=dict(info.get("labels", {})),
        images=tuple(info.get("images", [])),
        port_range=(int(port_range[0]), int(port_range[1])) if port_range else None,
        created_at=created_at,
        updated_at=created_at,
    )
    used_attrs = tuple((name, _used_attr(host_id, name)) for name in COUNTED)
    return _Copy(host, used_attrs, _count_attr(host_id))


def _host_from(value: str, item: Item) -> Host:
    """A host as the summary knows it, from its `host:` attribute's `value` and the
    counters of `item`, its shard: enough to choose it and to reserve on it (its
    reservation checks the host item itself), not to connect to it."""
    copy = _copy_from(value)
    used = Resources(**{name: int(item.get(attr, 0)) for name, attr in copy.used_attrs})
    return replace(copy.host, used=used, workload_count=int(item.get(copy.count_attr, 0)))


@dataclass(frozen=True)
class Fleet:
    """The summary read whole: its hosts (by id), and host id -> status -> number of
    the host's workloads in that status."""

    hosts: list[Host]
    by_status: dict[str, dict[str, int]]


Key = tuple[str, str]


@dataclass(frozen=True)
class Draw:
    """The summary's part of a create's first batch read (`PlacementStore.draw`): the
    shards drawn from the occupied ones this process knows (`drawn`); or, when it knows
    none fresh, the `OCCUPIED` item alone, from which `sample` draws."""

    keys: tuple[Key, ...]
    drawn: bool


class Occupied:
    """The occupied shards this process last read, and when. Thread-safe: a process's
    threads share it."""

    def __init__(self) -> None:
        self._known: tuple[frozenset[int], float] | None = None
        self._lock = threading.Lock()

    def fresh(self) -> frozenset[int] | None:
        """The shards, unless they were read more than `OCCUPIED_MAX_AGE_S` ago."""
        known = self._known
        if known is None or time.monotonic() - known[1] > OCCUPIED_MAX_AGE_S:
            return None
        return known[0]

    def read(self, shards: Iterable[int]) -> None:
        with self._lock:
            self._known = (frozenset(shards), time.monotonic())

    def entered(self, shard: int) -> None:
        """A host of this process's entered `shard` (as old as the set was)."""
        with self._lock:
            if self._known is not None:
                self._known = (self._known[0] | {shard}, self._known[1])


class PlacementStore:
    def __init__(self, db: Dynamo) -> None:
        self.db = db
        self.occupied = Occupied()

    def hosts(self, *, consistent: bool = False) -> list[Host]:
        """Every host of the summary, in one round trip of `PLACEMENT_SHARDS` items. An
        eventually consistent read is enough to choose (the reservation checks the
        host); `consistent` when a choice by a lagging read was just refused, and then
        the shards it finds hosts in are this process's occupied ones from now on."""
        items = self.db.get_many(every_shard(), consistent=consistent)
        if consistent:
            self.occupied.read(
                int(sk.removeprefix("HOSTS#"))
                for (_, sk), item in items.items()
                if any(name.startswith("host:") for name in item)
            )
        return _hosts_in(items.values())

    def draw(self) -> Draw:
        """What a create reads of the summary in its first batch, beside its cluster and
        egg: `SAMPLED_SHARDS` shards drawn at random among the occupied ones this
        process knows (every one when there are no more), or the `OCCUPIED` item when
        it knows none read in the last `OCCUPIED_MAX_AGE_S`."""
        shards = self.occupied.fresh()
        if shards is None:
            return Draw((OCCUPIED_KEY,), drawn=False)
        return Draw(_drawn(shards), drawn=True)

    def sample(self, draw: Draw, found: Mapping[Key, Item]) -> list[Host]:
        """The hosts placement chooses among, from `found`, what the caller's batch read
        by `draw`: the drawn shards' hosts; or, when it read the `OCCUPIED` item, the
        hosts of shards drawn from it, read in one more round trip of at most
        `SAMPLED_SHARDS` items (eventually consistent). As many items, whatever the
        fleet."""
        if draw.drawn:
            return _hosts_in(found[key] for key in draw.keys if key in found)
        occupied = found.get(OCCUPIED_KEY) or {}
        shards = [int(name.split(":", 1)[1]) for name in occupied if name.startswith("shard:")]
        self.occupied.read(shards)
        keys = _drawn(shards)
        if not keys:
            return []
        return _hosts_in(self.db.get_many(list(keys), consistent=False).values())

    def entry(self, host_id: str) -> Host | None:
        """One host as the summary has it (None when it has none)."""
        item = self.db.get(PLACEMENT_PK, shard_sk(shard_of_host(host_id)), consistent=False)
        info = (item or {}).get(_info_attr(host_id))
        return None if item is None or info is None else _host_from(info, item)

    # -- transaction entries -------------------------------------------------------

    def workloads_by_status(self) -> dict[str, dict[str, int]]:
        """Host id -> status -> number of its workloads in that status (gone ones left
        out), for every host that ever held one, deleted hosts included: the same
        `PLACEMENT_SHARDS` items, whatever the number of workloads."""
        return self.fleet().by_status

    def fleet(self) -> Fleet:
        """Every host of the summary and the workloads by status, in one strongly
        consistent read of the `PLACEMENT_SHARDS` items."""
        items = self.db.get_many(every_shard(), consistent=True).values()
        counts: dict[str, dict[str, int]] = {}
        for item in items:
            for name, value in item.items():
                if name.startswith(STATUS_PREFIX) and int(value) > 0:
                    host_id, status = name[len(STATUS_PREFIX) :].rsplit(":", 1)
                    counts.setdefault(host_id, {})[status] = int(value)
        return Fleet(_hosts_in(items), counts)

    def not_recounted(self, host_ids: Iterable[str]) -> list[str]:
        """Of `host_ids`, those whose `status:` counters were never set from their
        workloads (hosts older than the counters): one read of every shard."""
        items = self.db.get_many(every_shard(), consistent=False)
        prefix = _recounted_attr("")
        marked = {n[len(prefix) :] for i in items.values() for n in i if n.startswith(prefix)}
        return [h for h in host_ids if h not in marked]

    def statuses_as_read(self, host_id: str) -> dict[str, int]:
        """The host's `status:` counters as they are now (strongly consistent): what a
        `recount` conditions its write on."""
        item = self.db.get(PLACEMENT_PK, shard_sk(shard_of_host(host_id))) or {}
        prefix = _status_attr(host_id, "")
        return {n[len(prefix) :]: int(v) for n, v in item.items() if n.startswith(prefix)}

    def recount(
        self,
        host_id: str,
        as_read: Mapping[str, int],
        counted: Mapping[str, int],
        host_holds: TxEntry,
    ) -> bool:
        """Set the host's `status:` counters to `counted` (its workloads by status, read
        after `as_read`) and mark it recounted, provided no counter moved since
        `as_read` (every status change moves one) and `host_holds` (a check that the
        host holds as many workloads as were counted). False when something changed
        meanwhile: a later recount retries."""
        write = Expression()
        for status in sorted({*as_read, *counted}):
            name = _status_attr(host_id, status)
            write.set(name, counted.get(status, 0))
            if status in as_read:
                write.when_equal(name, as_read[status])
            else:
                write.when_absent(name)
        write.set(_recounted_attr(host_id), 1)
        shard = self.db.tx_update(
            PLACEMENT_PK, shard_sk(shard_of_host(host_id)), write, on_fail=unchanged_refusal
        )
        try:
            self.db.transact([host_holds, shard])
        except Conflict:
            return False
        return True

    def moves(self, moves: Mapping[str, HostMove]) -> list[TxEntry]:
        """Move the counters of each host of `moves`, one entry per shard touched (a
        transaction may touch an item once). Goes with the hosts' own counters and the
        workloads' statuses, in their transaction."""
        writes: dict[int, Expression] = {}
        for shard, counters in sorted(_counter_moves(moves).items()):
            write = writes.setdefault(shard, Expression())
            for name, amount in counters.items():
                write.count(name, amount)
        return [
            self.db.tx_update(PLACEMENT_PK, shard_sk(shard), write)
            for shard, write in sorted(writes.items())
            if write.arguments()
        ]

    def describe(self, host: Host) -> TxEntry:
        """Copy `host` (as it is once the transaction this goes with commits) into the
        summary, but for its counters."""
        write = Expression().set(_info_attr(host.id), _info_attr_value(host))
        return self.db.tx_update(PLACEMENT_PK, shard_sk(shard_of_host(host.id)), write)

    def enter(self, host: Host, *, new: bool = False) -> list[TxEntry]:
        """Copy `host` with its counters into the summary, and mark its shard occupied
        (a `new` host, whose workloads are all counted by status from the start; or a
        `sync`)."""
        shard = shard_of_host(host.id)
        write = Expression().set(_info_attr(host.id), _info_attr_value(host))
        if new:
            write.set(_recounted_attr(host.id), 1)
        for name in COUNTED:
            write.set(_used_attr(host.id, name), getattr(host.used, name))
        write.set(_count_attr(host.id), host.workload_count)
        occupied = Expression().set(_occupied_attr(shard), 1)
        return [
            self.db.tx_update(PLACEMENT_PK, shard_sk(shard), write),
            self.db.tx_update(PLACEMENT_PK, OCCUPIED_SK, occupied),
        ]

    def forget(self, host_id: str) -> TxEntry:
        """Drop a deleted host from the summary. Its shard stays marked occupied (other
        hosts may be in it): an empty shard drawn costs a create one fewer host to
        choose from, never a wrong choice."""
        names = [_info_attr(host_id), _count_attr(host_id)]
        names += [_used_attr(host_id, name) for name in COUNTED]
        return self.db.tx_update(
            PLACEMENT_PK, shard_sk(shard_of_host(host_id)), Expression().remove(*names)
        )

    def sync(self, host: Host, host_unchanged: TxEntry) -> bool:
        """Make the summary's entry of `host` exactly the host as read, provided the
        host is still as read (`host_unchanged`, a check of its version): the repair of
        a summary that lags. False when the host changed meanwhile (the next check
        repairs it)."""
        try:
            self.db.transact([host_unchanged, *self.enter(host)])
        except Conflict:
            return False
        return True


def _drawn(shards: Iterable[int]) -> tuple[Key, ...]:
    """The keys of `SAMPLED_SHARDS` of `shards` drawn at random (all of them when there
    are no more)."""
    ordered = sorted(shards)
    drawn = random.sample(ordered, min(SAMPLED_SHARDS, len(ordered)))
    return tuple((PLACEMENT_PK, shard_sk(shard)) for shard in drawn)


def _counter_moves(moves: Mapping[str, HostMove]) -> dict[int, dict[str, int]]:
    """Shard -> counter attribute -> what `moves` add to it (no zeros)."""
    counters: dict[int, dict[str, int]] = {}
    for host_id, move in moves.items():
        shard = counters.setdefault(shard_of_host(host_id), {})
        for name in COUNTED:
            amount = getattr(move.resources, name)
            if amount:
                shard[_used_attr(host_id, name)] = amount
        if move.workloads:
            shard[_count_attr(host_id)] = move.workloads
        for status, amount in sorted(move.statuses.items()):
            if amount:
                shard[_status_attr(host_id, status)] = amount
    return counters


def moved(summary: Mapping[Key, Item], moves: Mapping[str, HostMove]) -> dict[Key, Item]:
    """Shard items as `moves` leave them (what `PlacementStore.moves` writes), for a
    copy of the summary this process holds (a shard it does not hold stays unheld)."""
    after = dict(summary)
    for shard, counters in _counter_moves(moves).items():
        key = (PLACEMENT_PK, shard_sk(shard))
        if key in after:
            item = dict(after[key])
            for name, amount in counters.items():
                item[name] = int(item.get(name, 0)) + amount
            after[key] = item
    return after


def _hosts_in(items: Iterable[Item]) -> list[Host]:
    hosts = []
    for item in items:
        for name, value in item.items():
            if name.startswith("host:"):
                hosts.append(_host_from(value, item))
    return sorted(hosts, key=lambda h: h.id)


def lags(summary: Host | None, host: Host) -> bool:
    """Whether the summary's copy of `host` differs from the host as read."""
    if summary is None:
        return True
    return placement_info(summary) != placement_info(host) or (
        summary.workload_count,
        [getattr(summary.used, n) for n in COUNTED],
    ) != (host.workload_count, [getattr(host.used, n) for n in COUNTED])


def unchanged_refusal(_: Item | None) -> CorralError:
    return Conflict("The host changed meanwhile.")
