"""Workload health and output: what drivers measure, what the collector stores on the
workload and host items, and how old a measurement may be before the API calls it
unknown. Plain data and arithmetic, no I/O.

Health is measured by a scheduled job (workers/collector.py), never on an API read:
reading a container's health costs the API one table read and no host call.

`Health.state` is what the last measurement saw: `running`, `paused`, `stopped`,
`missing` (the host has no such container, e.g. while provisioning), or `unknown`
with a `reason`:

- `not_measured`: the collector has not measured the workload yet;
- `heartbeat_stale`: the last measurement is older than the freshness window
  (3 collection intervals by default): the collector is not running, or fell behind;
- `host_unreachable`: the collector could not reach the workload's host;
- `host_down`: the health check marked the host down, so the collector skipped it;

When unknown, the numbers are the last ones measured (as of `heartbeat`), or zeros.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from shared.runtime import RuntimeState

NS_PER_SECOND = 1_000_000_000
MIB = 1024 * 1024


class HealthState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    MISSING = "missing"
    UNKNOWN = "unknown"


class UnknownReason(StrEnum):
    NOT_MEASURED = "not_measured"
    HEARTBEAT_STALE = "heartbeat_stale"
    HOST_UNREACHABLE = "host_unreachable"
    HOST_DOWN = "host_down"


_FROM_RUNTIME = {
    RuntimeState.RUNNING: HealthState.RUNNING,
    RuntimeState.PAUSED: HealthState.PAUSED,
    RuntimeState.STOPPED: HealthState.STOPPED,
    RuntimeState.MISSING: HealthState.MISSING,
}


@dataclass(frozen=True)
class Stats:
    """One sample of a workload's resource use, as its host reports it.

    Times are the host's clock, in unix nanoseconds. `cpu_ns` is the CPU time the
    workload used since it (re)started; the collector turns two samples into a
    percentage, so a driver needs one cheap reading per workload, not two.
    """

    workload_id: str
    state: RuntimeState
    sampled_ns: int
    cpu_ns: int = 0
    memory_bytes: int = 0
    disk_bytes: int = 0
    started_ns: int | None = None


@dataclass(frozen=True)
class Health:
    """A workload's last measurement, stored on its item (attribute `health`)."""

    state: HealthState
    heartbeat: datetime | None = None  # Corral's clock when measured
    fresh_until: datetime | None = None  # after this, the measurement is stale
    cpu_percent: float = 0.0  # 100 = one core busy
    memory_mb: int = 0
    disk_mb: int = 0
    uptime_secs: int = 0
    reason: UnknownReason | None = None
    # The host's counters at that sample, kept for the next CPU delta.
    cpu_ns: int = 0
    sampled_ns: int = 0
    started_ns: int | None = None

    def is_stale(self, now: datetime) -> bool:
        return self.fresh_until is None or now > self.fresh_until

    def as_seen(self, now: datetime) -> Health:
        """What the API shows at `now`: a stale measurement says unknown."""
        if self.state is not HealthState.UNKNOWN and self.is_stale(now):
            return replace(self, state=HealthState.UNKNOWN, reason=UnknownReason.HEARTBEAT_STALE)
        return self


NOT_MEASURED = Health(state=HealthState.UNKNOWN, reason=UnknownReason.NOT_MEASURED)


def cpu_percent(stats: Stats, previous: Health | None) -> float:
    """CPU use between the previous sample and this one; the average since start when
    there is no comparable previous sample (first sample, or the workload restarted)."""
    if (
        previous is not None
        and previous.sampled_ns
        and previous.started_ns == stats.started_ns
        and stats.sampled_ns > previous.sampled_ns
        and stats.cpu_ns >= previous.cpu_ns
    ):
        used, elapsed = stats.cpu_ns - previous.cpu_ns, stats.sampled_ns - previous.sampled_ns
    elif stats.started_ns is not None and stats.sampled_ns > stats.started_ns:
        used, elapsed = stats.cpu_ns, stats.sampled_ns - stats.started_ns
    else:
        return 0.0
    return round(100 * used / elapsed, 2)


def measured(stats: Stats, previous: Health | None, now: datetime, fresh_for: timedelta) -> Health:
    """The health a fresh sample gives, measured at `now` (Corral's clock)."""
    state = _FROM_RUNTIME[stats.state]
    live = state in (HealthState.RUNNING, HealthState.PAUSED)
    uptime = 0
    if live and stats.started_ns is not None:
        uptime = max(0, (stats.sampled_ns - stats.started_ns) // NS_PER_SECOND)
    return Health(
        state=state,
        heartbeat=now,
        fresh_until=now + fresh_for,
        cpu_percent=cpu_percent(stats, previous) if state is HealthState.RUNNING else 0.0,
        memory_mb=round(stats.memory_bytes / MIB) if live else 0,
        disk_mb=round(stats.disk_bytes / MIB),
        uptime_secs=uptime,
        cpu_ns=stats.cpu_ns,
        sampled_ns=stats.sampled_ns,
        started_ns=stats.started_ns,
    )


def missing(now: datetime, fresh_for: timedelta) -> Health:
    """The host answered and has no such workload."""
    return Health(state=HealthState.MISSING, heartbeat=now, fresh_until=now + fresh_for)


def unknown(previous: Health | None, reason: UnknownReason) -> Health:
    """No measurement possible: keep the last numbers and heartbeat, say why."""
    return replace(previous or NOT_MEASURED, state=HealthState.UNKNOWN, reason=reason)


@dataclass(frozen=True)
class HostLoad:
    """What a host's workloads use, summed by the collector; stored on the host item."""

    cpu_percent: float
    memory_mb: int
    disk_mb: int
    workloads: int  # how many workloads the sums cover
    measured_at: datetime
    fresh_until: datetime

    def is_stale(self, now: datetime) -> bool:
        return now > self.fresh_until


def host_load(measured_now: Iterable[Health], now: datetime, fresh_for: timedelta) -> HostLoad:
    """Sum the workloads measured at `now` on one host."""
    healths = list(measured_now)
    return HostLoad(
        cpu_percent=round(sum(h.cpu_percent for h in healths), 2),
        memory_mb=sum(h.memory_mb for h in healths),
        disk_mb=sum(h.disk_mb for h in healths),
        workloads=len(healths),
        measured_at=now,
        fresh_until=now + fresh_for,
    )


# -- output -------------------------------------------------------------------------

MAX_TAIL = 10_000
# Lines of the previous read looked for in the next one, for output without timestamps.
OVERLAP_ANCHOR_LINES = 32


@dataclass(frozen=True)
class LogLine:
    """One line of a workload's output. `at_ns` is the host's timestamp (unix ns), or
    None for sources that carry none (a VM's serial console)."""

    text: str
    stream: str = "stdout"  # stdout, stderr, console
    at_ns: int | None = None

    def to_wire(self) -> list[object]:
        return [self.at_ns, self.stream, self.text]

    @classmethod
    def from_wire(cls, value: list[object]) -> LogLine:
        at_ns, stream, text = value
        return cls(text=str(text), stream=str(stream), at_ns=int(str(at_ns)) if at_ns else None)


def console_lines(data: bytes, tail: int) -> list[LogLine]:
    """Split a raw console capture into its last `tail` lines (for drivers whose
    workloads have no per-line timestamps, like a VM's serial console)."""
    text = data.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [LogLine(text=line, stream="console") for line in lines[-tail:]] if tail > 0 else []


def newest_within(lines: list[LogLine], tail: int, max_bytes: int) -> tuple[list[LogLine], bool]:
    """The last `tail` lines that fit in `max_bytes` of text; True when some were cut."""
    kept: list[LogLine] = []
    size = 0
    for line in reversed(lines[-tail:] if tail > 0 else []):
        size += len(line.text.encode()) + 1
        if size > max_bytes:
            break
        kept.append(line)
    kept.reverse()
    return kept, len(kept) < len(lines)


def after_cursor(lines: list[LogLine], cursor_ns: int | None, seen: set[LogLine]) -> list[LogLine]:
    """Lines of a follow-up read that were not shown yet: later than the cursor, or at
    the cursor's instant and not among the lines already shown at it."""
    if cursor_ns is None:
        return [line for line in lines if line not in seen]
    return [
        line
        for line in lines
        if line.at_ns is not None
        and (line.at_ns > cursor_ns or (line.at_ns == cursor_ns and line not in seen))
    ]


def after_overlap(previous: list[LogLine], current: list[LogLine]) -> list[LogLine]:
    """For output without timestamps, read again as a window of its tail: the lines of
    `current` after the last place where the end of `previous` appears in it, or after
    the longest end of `previous` that `current` begins with (when the window slid);
    all of `current` when the two do not overlap."""
    if not previous:
        return current
    anchor = previous[-OVERLAP_ANCHOR_LINES:]
    size = len(anchor)
    for start in range(len(current) - size, -1, -1):
        if current[start] == anchor[0] and current[start : start + size] == anchor:
            return current[start + size :]
    # The window slid past the anchor's start: the end of `previous` begins `current`.
    for start, first in enumerate(previous):
        if current and first == current[0] and previous[start:] == current[: len(previous) - start]:
            return current[len(previous) - start :]
    return current


def format_ns(at_ns: int) -> str:
    """RFC 3339 in UTC with nanoseconds, e.g. 2026-01-02T03:04:05.123456789Z."""
    seconds, nanos = divmod(at_ns, NS_PER_SECOND)
    moment = datetime.fromtimestamp(seconds, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{nanos:09d}Z"


def to_ns(moment: datetime) -> int:
    """A timezone-aware datetime as unix nanoseconds (microsecond precision)."""
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * NS_PER_SECOND + delta.microseconds * 1000


class LogCursor:
    """Where a follower is in a workload's output: what to ask next (`since_ns`) and,
    of what a read returns, which lines were not shown yet."""

    def __init__(self, since_ns: int | None) -> None:
        self.since_ns = since_ns
        self._shown_at_cursor: set[LogLine] = set()
        self._window: list[LogLine] = []
        self._started = False

    def advance(self, lines: list[LogLine]) -> list[LogLine]:
        if not self._started:
            new = lines
            self._started = True
        elif any(line.at_ns is None for line in lines):
            new = after_overlap(self._window, lines)
        else:
            new = after_cursor(lines, self.since_ns, self._shown_at_cursor)
        self._window = lines
        stamps = [line.at_ns for line in new if line.at_ns is not None]
        if stamps:
            latest = max(stamps)
            if latest != self.since_ns:
                self._shown_at_cursor = set()
            self.since_ns = latest
            self._shown_at_cursor |= {line for line in new if line.at_ns == latest}
        return new
