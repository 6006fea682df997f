"""The event logs in the table: one partition per log (`EVENTS#<cluster id>`, or
`EVENTS#platform`), holding a sequence counter item and the events, sorted by
sequence.

`Dynamo.transact(entries, events=...)` is the one way a change is committed with its
events. Their numbers are reserved first, outside the transaction (`reserve`), from
the log's `numbers`: one atomic `ADD` on the log's counter in the table
(`TableNumbers`), or, as the API and the workers are wired, Redis handing out blocks
that counter reserves (infra.event_numbers). Neither fails on contention, so commits
to one cluster run side by side (a conditional counter inside the transaction made
them take turns, each loser sent again). The transaction then puts each event at its
number, conditioned on the number being free.

A reserved number is therefore filled by exactly one of:
- the change's event, when its transaction commits;
- a void item (`void`, and its time), written by the change itself when its own
  conditions refuse it (capacity, state...): readers pass a void, never show it;
- a void written by a reader, when the number is still missing (a hole) while a
  later number was written more than `hole_grace_seconds` ago (the setting
  CORRAL_EVENT_HOLE_GRACE_SECONDS): the process that reserved it crashed, or is
  slow. A slow commit that arrives after that finds its number taken
  (`EventNumberTaken`, told apart from the change's own conditions) and is sent
  again with newly reserved numbers.
Each void put is conditioned on the number being free, so a number is never both an
event and a void, and no committed change is without its event.

Readers (`after`: pages, follows, webhook deliveries) never pass a hole: before the
grace they stop in front of it (a follow reads again when woken or at its next poll),
after it they void it. The age of a hole is judged by the time on the next present
item: numbers are reserved in order and an event's time is taken after its numbers
were reserved, so the hole is at least that old. A run of more than `EXPIRED_RUN`
missing numbers is expired history (the TTL removes old events), passed as is.

The log is ordered by number, that is by reservation: two changes that commit side
by side may appear in the other order than they committed; a change conditioned on
another's result (a record's version, a state) always comes after it."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from botocore.exceptions import ClientError

from infra.table.attributes import Item
from infra.table.expression import Expression
from shared.clock import parse_iso, stamp, utc_now
from shared.errors import CorralError
from shared.events import Change, Event, current_actor, redact

if TYPE_CHECKING:
    from infra.table.dynamo import Dynamo, TxEntry

SEQUENCE_SK = "#SEQUENCE"
EVENT_PREFIX = "EV#"
# How long the table keeps an event (its `ttl`); the setting CORRAL_EVENT_RETENTION_DAYS.
DEFAULT_RETENTION_SECONDS = 90 * 24 * 3600
# How long a reader waits for a reserved number before voiding it; the setting
# CORRAL_EVENT_HOLE_GRACE_SECONDS.
DEFAULT_HOLE_GRACE_SECONDS = 5.0
# A run of missing numbers wider than this is not commits in flight but events the
# table's TTL removed (a cursor older than the retention): readers pass it at once,
# writing nothing.
EXPIRED_RUN = 1000

log = logging.getLogger("corral.events")


def log_pk(log_name: str) -> str:
    return f"EVENTS#{log_name}"


def event_sk(sequence: int) -> str:
    return f"{EVENT_PREFIX}{sequence:015d}"


class EventNumberTaken(CorralError):
    """A reader voided a number this commit had reserved (it waited past the grace):
    nothing was committed; the commit is sent again with new numbers."""

    code, status = "conflict", 409

    def __init__(self, log_name: str, sequence: int) -> None:
        super().__init__("The change's event number was voided; renumbering.")
        self.log = log_name
        self.sequence = sequence


@dataclass(frozen=True)
class Numbered:
    """A commit's events at the numbers reserved for one attempt, and the entries that
    write them."""

    events: tuple[Event, ...]
    entries: tuple[TxEntry, ...]

    @property
    def logs(self) -> set[str]:
        return {event.log for event in self.events}


class Numbers(Protocol):
    """Where a log's numbers come from: handed out in order, never twice."""

    def take(self, log_name: str, count: int) -> int:
        """Reserve `count` numbers after every one reserved before; the last of them."""

    def discard(self, log_name: str) -> None:
        """A reader voided a number this source handed out, which may be behind others
        reserved elsewhere: the next numbers must come after everything reserved."""


class TableNumbers:
    """A log's numbers reserved on its counter item in the table (`SEQUENCE_SK`), by
    one atomic ADD each time: never failing on contention, always after everything."""

    def __init__(self, db: Dynamo) -> None:
        self._db = db

    def take(self, log_name: str, count: int) -> int:
        return self._db.increment(log_pk(log_name), SEQUENCE_SK, "sequence", count)

    def last(self, log_name: str) -> int:
        """The last number reserved on the counter (0: none yet)."""
        item = self._db.get(log_pk(log_name), SEQUENCE_SK)
        return int(item["sequence"]) if item is not None else 0

    def discard(self, log_name: str) -> None:
        """Nothing to forget: the counter is always after everything."""


class EventLog:
    """Numbers, voids and reads the event logs. One per Dynamo; thread-safe."""

    def __init__(
        self,
        db: Dynamo,
        retention_seconds: int = DEFAULT_RETENTION_SECONDS,
        hole_grace_seconds: float = DEFAULT_HOLE_GRACE_SECONDS,
    ) -> None:
        self.db = db
        self.retention_seconds = retention_seconds
        self.hole_grace_seconds = hole_grace_seconds
        # The table's counter alone, unless Redis hands them out (services.deps wires
        # infra.event_numbers.RedisNumbers).
        self.numbers: Numbers = TableNumbers(db)

    # -- writes ------------------------------------------------------------------

    def reserve(self, changes: Sequence[Change]) -> Numbered:
        """Reserve numbers for `changes` (one call to `numbers` per log) and make their
        events and the entries that put them, timed now (after the reservation)."""
        by_log: dict[str, list[Change]] = {}
        for change in changes:
            by_log.setdefault(change.log, []).append(change)
        last = {name: self.numbers.take(name, len(found)) for name, found in by_log.items()}
        now = utc_now()
        actor = current_actor()
        events: list[Event] = []
        for name, found in by_log.items():
            first = last[name] - len(found) + 1
            events += [
                Event(
                    log=name,
                    sequence=first + offset,
                    type=change.type,
                    kind=change.kind,
                    resource_id=change.resource_id,
                    actor=actor,
                    time=now,
                    before=redact(change.before),
                    after=redact(change.after),
                )
                for offset, change in enumerate(found)
            ]
        return Numbered(tuple(events), tuple(self._put(event) for event in events))

    def _put(self, event: Event) -> TxEntry:
        def taken(_: Item | None) -> CorralError:
            return EventNumberTaken(event.log, event.sequence)

        return self.db.tx_put(self._item(event), Expression().when_absent(), on_fail=taken)

    def void(self, numbered: Numbered) -> bool:
        """Void the numbers of a commit that did not happen (whatever a reader voided
        already stays so). Best effort: a number left missing is voided by a reader
        after the grace. Whether any void was written."""
        wrote = False
        with contextlib.suppress(CorralError, ClientError):
            for event in numbered.events:
                wrote = self._void(event.log, event.sequence, utc_now()) or wrote
        return wrote

    def _void(self, log_name: str, sequence: int, now: datetime) -> bool:
        """Put a void at `sequence` unless something is there already; whether it did."""
        return self.db.put_alone(
            {
                "pk": log_pk(log_name),
                "sk": event_sk(sequence),
                "sequence": sequence,
                "void": True,
                "time": stamp(now),
                "ttl": int(now.timestamp()) + self.retention_seconds,
            }
        )

    def _item(self, event: Event) -> Item:
        return {
            "pk": log_pk(event.log),
            "sk": event_sk(event.sequence),
            "sequence": event.sequence,
            "type": event.type,
            "kind": event.kind,
            "resource_id": event.resource_id,
            "actor": event.actor,
            "time": stamp(event.time),
            "before": event.before,
            "after": event.after,
            "ttl": int(event.time.timestamp()) + self.retention_seconds,
        }

    # -- reads -------------------------------------------------------------------

    def after(self, log_name: str, sequence: int, limit: int) -> Iterator[Event]:
        """Up to `limit` of the log's events after `sequence`, oldest first, passing
        voids, and never past a missing number: stopping in front of one younger than
        the grace, voiding one older (strongly consistent: a reader never passes an
        event that is committed)."""
        expected, count = sequence + 1, 0
        while True:
            items = self.db.query(
                log_pk(log_name),
                sk_after=event_sk(expected - 1),  # the counter item ("#...") sorts before
                consistent=True,
                page_size=limit,
            )
            for item in items:
                number = int(item["sequence"])
                if expected < number <= expected + EXPIRED_RUN:
                    if not self._past_grace(item):
                        return  # a young hole: stop in front of it
                    if not self._void_hole(log_name, expected, number):
                        break  # a late commit filled some of it just now: read from there
                expected = number + 1
                if item.get("void"):
                    continue
                yield event_from(log_name, item)
                count += 1
                if count >= limit:
                    return
            else:
                return  # read to the end of the log

    def _past_grace(self, beyond: Item) -> bool:
        """Whether a hole in front of the item `beyond` is older than the grace."""
        moment = parse_iso(beyond["time"])
        assert moment is not None
        return utc_now() - moment >= timedelta(seconds=self.hole_grace_seconds)

    def _void_hole(self, log_name: str, first: int, beyond: int) -> bool:
        """Void the missing numbers `first` up to `beyond`: whether all of them are void
        now (False: a late commit filled some, to be read)."""
        now = utc_now()
        voided = True
        for number in range(first, beyond):
            if self._void(log_name, number, now):
                log.info("voided event %s of log %s: missing past the grace", number, log_name)
            else:
                voided = False
        return voided


def event_from(log_name: str, item: Item) -> Event:
    moment = parse_iso(item["time"])
    assert moment is not None
    return Event(
        log=log_name,
        sequence=int(item["sequence"]),
        type=item["type"],
        kind=item["kind"],
        resource_id=item["resource_id"],
        actor=item["actor"],
        time=moment,
        before=item.get("before"),
        after=item.get("after"),
    )
