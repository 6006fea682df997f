"""The event logs in the table: one partition per log (`EVENTS#<cluster id>`, or
`EVENTS#platform`), holding a sequence counter item and the events, sorted by
sequence.

`Dynamo.transact(entries, events=...)` is the one way a change is committed with its
events: `EventLog.entries` numbers them from the log's counter as last known, and
adds to the transaction a counter update conditioned on that number and one put per
event (conditioned on its sequence being free). Two commits to one log can then never
take the same number or skip one: the loser's counter condition fails
(`SequenceMoved`, carrying the number the log is at) and it is sent again, renumbered.
The log is exactly the committed changes, in commit order, with no gaps."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from infra.table.attributes import Item
from infra.table.expression import Expression
from shared.clock import parse_iso, stamp
from shared.errors import CorralError
from shared.events import Change, Event, current_actor, redact

if TYPE_CHECKING:
    from infra.table.dynamo import Dynamo, TxEntry

SEQUENCE_SK = "#SEQUENCE"
EVENT_PREFIX = "EV#"
# How long the table keeps an event (its `ttl`); the setting CORRAL_EVENT_RETENTION_DAYS.
DEFAULT_RETENTION_SECONDS = 90 * 24 * 3600


def log_pk(log: str) -> str:
    return f"EVENTS#{log}"


def event_sk(sequence: int) -> str:
    return f"{EVENT_PREFIX}{sequence:015d}"


class SequenceMoved(CorralError):
    """Another commit took the sequence numbers this one counted on (sent again)."""

    code, status = "conflict", 409

    def __init__(self, log: str, sequence: int) -> None:
        super().__init__("The event log moved on; renumbering.")
        self.log = log
        self.sequence = sequence


@dataclass(frozen=True)
class Numbered:
    """A commit's events as numbered for one attempt, and the entries that write them."""

    events: tuple[Event, ...]
    entries: tuple[TxEntry, ...]


class EventLog:
    """Numbers and reads the event logs. One per Dynamo; thread-safe."""

    def __init__(self, db: Dynamo, retention_seconds: int = DEFAULT_RETENTION_SECONDS) -> None:
        self.db = db
        self.retention_seconds = retention_seconds
        self._known: dict[str, int] = {}  # the sequence each log was last seen at
        self._lock = threading.Lock()
        self._committing: dict[str, threading.Lock] = {}

    @contextlib.contextmanager
    def committing(self, logs: Iterable[str]) -> Iterator[None]:
        """Hold these logs for one commit: this process's threads commit to one log one
        at a time. Each commit conditions the log's counter on the number it last saw,
        so concurrent commits to one log all but one fail and are sent again; without
        this, a busy cluster's threads mostly resent one another's losers (16 threads
        creating in one cluster ran at a tenth of the rate). Other processes still race,
        and the counter's condition still decides between them. Locks are taken in
        order, so two commits to the same logs never wait on each other."""
        with self._lock:
            locks = [self._committing.setdefault(log, threading.Lock()) for log in sorted(logs)]
        with contextlib.ExitStack() as held:
            for lock in locks:
                held.enter_context(lock)
            yield

    def number(self, changes: Sequence[Change], now: datetime) -> Numbered:
        """Number `changes` after each log's last known sequence (read once per process
        and log, then learnt from the commits and from `SequenceMoved`)."""
        by_log: dict[str, list[Change]] = {}
        for change in changes:
            by_log.setdefault(change.log, []).append(change)
        actor = current_actor()
        events: list[Event] = []
        entries: list[TxEntry] = []
        for log, log_changes in by_log.items():
            start = self._last(log)
            for offset, change in enumerate(log_changes, start=1):
                event = Event(
                    log=log,
                    sequence=start + offset,
                    type=change.type,
                    kind=change.kind,
                    resource_id=change.resource_id,
                    actor=actor,
                    time=now,
                    before=redact(change.before),
                    after=redact(change.after),
                )
                events.append(event)
                entries.append(self.db.tx_put(self._item(event), Expression().when_absent()))
            entries.insert(0, self._advance(log, start, start + len(log_changes)))
        return Numbered(tuple(events), tuple(entries))

    def committed(self, numbered: Numbered) -> None:
        with self._lock:
            for event in numbered.events:
                if event.sequence > self._known.get(event.log, 0):
                    self._known[event.log] = event.sequence

    def moved(self, moved: SequenceMoved) -> None:
        with self._lock:
            self._known[moved.log] = moved.sequence

    def _last(self, log: str) -> int:
        with self._lock:
            known = self._known.get(log)
        if known is None:
            known = self.sequence_of(log)
            with self._lock:
                self._known.setdefault(log, known)
        return known

    def sequence_of(self, log: str) -> int:
        """The sequence of the log's last event (0: none yet)."""
        item = self.db.get(log_pk(log), SEQUENCE_SK)
        return int(item["sequence"]) if item else 0

    def _advance(self, log: str, expected: int, new: int) -> TxEntry:
        write = Expression().set("sequence", new)
        if expected == 0:
            write.when_absent("sequence")
        else:
            write.when_equal("sequence", expected)

        def moved(old: Item | None) -> CorralError:
            return SequenceMoved(log, int(old["sequence"]) if old else 0)

        return self.db.tx_update(log_pk(log), SEQUENCE_SK, write, on_fail=moved)

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

    def after(self, log: str, sequence: int, limit: int) -> Iterator[Event]:
        """The log's events after `sequence`, oldest first (strongly consistent: a
        follower never passes an event that is committed)."""
        items = self.db.query(
            log_pk(log),
            sk_after=event_sk(sequence),  # the counter item ("#...") sorts before
            consistent=True,
            page_size=limit,
        )
        for count, item in enumerate(items, start=1):
            yield event_from(log, item)
            if count >= limit:
                return


def event_from(log: str, item: Item) -> Event:
    moment = parse_iso(item["time"])
    assert moment is not None
    return Event(
        log=log,
        sequence=int(item["sequence"]),
        type=item["type"],
        kind=item["kind"],
        resource_id=item["resource_id"],
        actor=item["actor"],
        time=moment,
        before=item.get("before"),
        after=item.get("after"),
    )
