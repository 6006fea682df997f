"""Events: the record of every committed change, in order, per cluster (and one log
for the platform's own changes: hosts, eggs, operator keys). They are the audit trail,
the feed of GET .../events (and its SSE follow) and what webhooks deliver.

An event is written in the same transaction as the change it describes (see
infra.table.dynamo, `Dynamo.transact(..., events=...)`), at a number reserved on its
log just before (infra.table.events), so a log holds exactly the committed changes,
each once, in the order of their numbers; readers never pass a number still to come.
Who made a change (the actor) is the API key of the request, or `system` for what
workers and sweeps do on their own; `acting_as` sets it for the code that runs under
it (the request's thread, a job)."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.clock import stamp
from shared.errors import InvalidInput

PLATFORM_LOG = "platform"  # the log of changes that belong to no cluster
SYSTEM_ACTOR = "system"
REDACTED = "[redacted]"
# Fields whose values never enter an event (keys, passwords, credentials, sealed data).
# The environment is left out whole: database connection variables (URLs with
# passwords) are injected there.
SECRET_MARKERS = (
    "secret",
    "password",
    "key_hash",
    "token",
    "credential",
    "private",
    "sealed",
    "environment",
)
MAX_TYPES = 20

_actor: contextvars.ContextVar[str] = contextvars.ContextVar("corral_actor", default=SYSTEM_ACTOR)


def current_actor() -> str:
    return _actor.get()


def set_actor(key_id: str | None) -> None:
    """Make `key_id` the actor of what this thread commits from now on (None: system).
    Request threads are reused: the auth middleware sets it on every request."""
    _actor.set(key_id or SYSTEM_ACTOR)


@contextlib.contextmanager
def acting_as(key_id: str | None) -> Iterator[None]:
    token = _actor.set(key_id or SYSTEM_ACTOR)
    try:
        yield
    finally:
        _actor.reset(token)


def redact(values: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """`values` with every secret-looking field's value replaced (recursively)."""
    if values is None:
        return None
    return {key: _redacted(key, value) for key, value in values.items()}


def _redacted(key: str, value: Any) -> Any:
    lowered = key.lower()
    if any(marker in lowered for marker in SECRET_MARKERS):
        return REDACTED
    if isinstance(value, Mapping):
        return redact(value)
    return value


@dataclass(frozen=True)
class Change:
    """A change about to be committed: what the event will say (its log, sequence,
    actor and time are given when it is written)."""

    type: str  # "<kind>.<what happened>": workload.created, operation.succeeded
    kind: str  # the resource's kind: workload, operation, host, cluster, key, ...
    resource_id: str
    cluster_id: str | None  # None: the platform log
    before: Mapping[str, Any] | None = None
    after: Mapping[str, Any] | None = None

    @property
    def log(self) -> str:
        return self.cluster_id or PLATFORM_LOG


@dataclass(frozen=True)
class Event:
    """A committed change, as its log holds it."""

    log: str
    sequence: int
    type: str
    kind: str
    resource_id: str
    actor: str
    time: datetime
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None

    @property
    def cursor(self) -> str:
        return event_cursor(self.log, self.sequence)

    @property
    def cluster_id(self) -> str | None:
        return None if self.log == PLATFORM_LOG else self.log

    def to_api(self, cursor: str | None = None) -> dict[str, Any]:
        """As the API and webhook deliveries show it; `cursor`: its id in a merged feed."""
        return {
            "id": cursor or self.cursor,
            "sequence": self.sequence,
            "type": self.type,
            "resource": {"kind": self.kind, "id": self.resource_id},
            "cluster_id": self.cluster_id,
            "actor": self.actor,
            "time": stamp(self.time),
            "before": self.before,
            "after": self.after,
        }


@dataclass(frozen=True)
class EventFilter:
    types: frozenset[str] = field(default_factory=frozenset)
    actor: str | None = None
    resource_id: str | None = None
    kind: str | None = None

    def admits(self, event: Event) -> bool:
        if self.types and not any(_type_matches(event.type, t) for t in self.types):
            return False
        if self.actor is not None and event.actor != self.actor:
            return False
        if self.kind is not None and event.kind != self.kind:
            return False
        return self.resource_id is None or event.resource_id == self.resource_id


def _type_matches(event_type: str, wanted: str) -> bool:
    """`workload.created` matches itself; `workload` or `workload.*` every workload event."""
    prefix = wanted.removesuffix(".*")
    return event_type == wanted or event_type.startswith(prefix + ".")


def parse_types(values: list[str]) -> frozenset[str]:
    types = frozenset(t.strip() for value in values for t in value.split(",") if t.strip())
    if len(types) > MAX_TYPES:
        raise InvalidInput(f"types takes at most {MAX_TYPES} event types.")
    for wanted in types:
        if len(wanted) > 64 or not all(c.isalnum() or c in "._*" for c in wanted):
            raise InvalidInput(f"types: {wanted[:64]!r} is not an event type.")
    return types


def event_cursor(log: str, sequence: int) -> str:
    """The opaque position after an event: its sequence (a log is one cluster's)."""
    return str(sequence)


def parse_cursor(value: str | None) -> int:
    """The sequence a cursor (`after`, `Last-Event-ID`) stands after; none: 0 (the start)."""
    if value is None or value == "":
        return 0
    if not value.isdigit() or len(value) > 15:
        raise InvalidInput("The cursor must be a cursor this API returned (an event's id).")
    return int(value)
