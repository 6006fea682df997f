"""The arithmetic of health and the bookkeeping of following logs (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.health import (
    NOT_MEASURED,
    Health,
    HealthState,
    LogCursor,
    LogLine,
    Stats,
    UnknownReason,
    console_lines,
    cpu_percent,
    format_ns,
    measured,
    newest_within,
    to_ns,
    unknown,
)
from shared.runtime import RuntimeState

S = 1_000_000_000
NOW = datetime(2024, 3, 14, 10, 5, tzinfo=UTC)
FRESH = timedelta(seconds=90)


def sample(at_s: float, cpu_s: float, started_s: float = 0.0, **kw: object) -> Stats:
    return Stats(
        "w",
        RuntimeState.RUNNING,
        sampled_ns=int(at_s * S),
        cpu_ns=int(cpu_s * S),
        started_ns=int(started_s * S),
        **kw,  # type: ignore[arg-type]
    )


def test_cpu_percent_is_the_delta_between_two_samples() -> None:
    first = measured(sample(100, 10), None, NOW, FRESH)
    assert first.cpu_percent == 10.0  # no previous sample: the average since start
    second = measured(sample(102, 13), first, NOW, FRESH)
    assert second.cpu_percent == 150.0  # 3 s of CPU in 2 s: one and a half cores


def test_a_restart_resets_the_counters() -> None:
    before = measured(sample(100, 50), None, NOW, FRESH)
    after = sample(110, 1, started_s=108)
    assert cpu_percent(after, before) == 50.0  # since its new start, not against `before`


def test_stale_measurements_show_as_unknown() -> None:
    health = measured(sample(100, 1), None, NOW, FRESH)
    assert health.as_seen(NOW + FRESH).state is HealthState.RUNNING
    seen = health.as_seen(NOW + FRESH + timedelta(seconds=1))
    assert seen.state is HealthState.UNKNOWN and seen.reason is UnknownReason.HEARTBEAT_STALE
    assert NOT_MEASURED.as_seen(NOW).reason is UnknownReason.NOT_MEASURED


def test_unknown_keeps_the_last_numbers() -> None:
    last = Health(HealthState.RUNNING, heartbeat=NOW, cpu_percent=40.0, memory_mb=12)
    marked = unknown(last, UnknownReason.HOST_UNREACHABLE)
    assert (marked.state, marked.cpu_percent, marked.memory_mb) == (HealthState.UNKNOWN, 40.0, 12)
    assert marked.heartbeat == NOW


def test_stopped_workloads_use_nothing_but_disk() -> None:
    stopped = Stats("w", RuntimeState.STOPPED, sampled_ns=5 * S, memory_bytes=9 << 20)
    health = measured(stopped, None, NOW, FRESH)
    assert (health.state, health.cpu_percent, health.memory_mb) == (HealthState.STOPPED, 0.0, 0)


def line(text: str, at_s: float | None) -> LogLine:
    return LogLine(text, "stdout", None if at_s is None else int(at_s * S))


def test_cursor_shows_each_timestamped_line_once() -> None:
    cursor = LogCursor(None)
    a, b, c = line("a", 1), line("b", 2), line("c", 2)
    assert cursor.advance([a, b]) == [a, b]
    assert cursor.since_ns == 2 * S
    # the next read starts at the cursor's instant: b again, and c new at the same instant
    assert cursor.advance([b, c]) == [c]
    assert cursor.advance([b, c]) == []
    d = line("d", 3)
    assert cursor.advance([b, c, d]) == [d]


def test_cursor_follows_output_without_timestamps_by_overlap() -> None:
    cursor = LogCursor(None)
    first = [line(t, None) for t in "abc"]
    assert cursor.advance(first) == first
    assert [x.text for x in cursor.advance([line(t, None) for t in "abcde"])] == ["d", "e"]
    assert [x.text for x in cursor.advance([line(t, None) for t in "cdef"])] == ["f"]
    assert cursor.advance([line(t, None) for t in "cdef"]) == []


def test_console_lines_and_byte_budget() -> None:
    lines = console_lines(b"boot\r\nok\nlast", 2)
    assert [x.text for x in lines] == ["ok", "last"] and lines[0].stream == "console"
    many = [line("x" * 10, i) for i in range(10)]
    kept, cut = newest_within(many, 5, 1000)
    assert kept == many[-5:] and cut
    kept, cut = newest_within(many[:3], 5, 1000)
    assert kept == many[:3] and not cut
    kept, cut = newest_within(many, 10, 25)
    assert kept == many[-2:] and cut


def test_timestamps_keep_nanoseconds() -> None:
    assert format_ns(1_710_410_700_000_000_042) == "2024-03-14T10:05:00.000000042Z"
    assert to_ns(NOW) == 1_710_410_700 * S
