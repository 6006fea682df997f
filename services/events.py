"""Reading the event logs: a page after a cursor, for one log (a tenant's cluster, or
the operator's choice of one) or for all of them (the operator's feed: the platform's
log and every cluster's, merged by time; its cursor holds where it stands in each).

A cursor is opaque to clients. For one log it is the sequence of the last event
read (what an SSE event's `id:` carries, so `Last-Event-ID` resumes exactly after
it); for all logs it is every log's sequence, encoded."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field

from infra.table.repository import Repository
from shared.errors import InvalidInput
from shared.events import PLATFORM_LOG, Event, EventFilter, parse_cursor

# A page reads at most this many events of a log (matching the filter or not), so a
# filter that matches little costs a bounded read; the cursor moves past them anyway.
SCAN_LIMIT = 500
ALL_PREFIX = "all."


@dataclass
class Position:
    """Where a reader stands: the last sequence it has read in each log it reads."""

    logs: dict[str, int] = field(default_factory=dict)
    merged: bool = False  # the operator's feed of every log

    def cursor(self) -> str:
        if not self.merged:
            (sequence,) = self.logs.values()
            return str(sequence)
        raw = json.dumps(self.logs, separators=(",", ":"), sort_keys=True).encode()
        return ALL_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def one_log(log: str, cursor: str | None) -> Position:
    return Position({log: parse_cursor(cursor)})


def all_logs(cluster_ids: list[str], cursor: str | None) -> Position:
    """The operator's feed: the platform's log and every cluster's. A new cluster's log
    is read from its start."""
    known: dict[str, int] = {}
    if cursor:
        if not cursor.startswith(ALL_PREFIX):
            raise InvalidInput("The cursor must be a cursor this API returned.")
        try:
            encoded = cursor.removeprefix(ALL_PREFIX)
            decoded = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
        except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
            raise InvalidInput("The cursor must be a cursor this API returned.") from exc
        if not isinstance(decoded, dict) or not all(
            isinstance(k, str) and isinstance(v, int) and v >= 0 for k, v in decoded.items()
        ):
            raise InvalidInput("The cursor must be a cursor this API returned.")
        known = decoded
    logs = [PLATFORM_LOG, *cluster_ids]
    return Position({log: known.get(log, 0) for log in logs}, merged=True)


class EventFeed:
    def __init__(self, repo: Repository) -> None:
        self._log = repo.db.events
        self._clusters = repo.clusters

    def join_new_logs(self, position: Position) -> None:
        """The operator's feed of every log takes in the clusters made since it began,
        from their first event (a follow outlives the list it started with)."""
        if position.merged:
            for cluster in self._clusters.list():
                position.logs.setdefault(cluster.id, 0)

    def page(self, position: Position, wanted: EventFilter, limit: int) -> list[Event]:
        """Up to `limit` events after `position` that `wanted` admits, oldest first;
        `position` moves past every event read (admitted or not)."""
        found: list[Event] = []
        for log, after in position.logs.items():
            scanned, taken = after, 0
            for event in self._log.after(log, after, SCAN_LIMIT):
                if taken >= limit:
                    break
                scanned = event.sequence
                if wanted.admits(event):
                    found.append(event)
                    taken += 1
            position.logs[log] = scanned
        if not position.merged:
            return found
        # Several logs: the oldest `limit` of them, and each log's position only up to
        # what is handed out (the rest is read again next time).
        found.sort(key=lambda e: (e.time, e.log, e.sequence))
        handed = found[:limit]
        for log in position.logs:
            left = [e.sequence for e in found[limit:] if e.log == log]
            if left:
                position.logs[log] = min(left) - 1
        return handed
