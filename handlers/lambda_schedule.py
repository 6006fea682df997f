"""Scheduled entries: EventBridge calls one entry per schedule of
`infra.jobs.SCHEDULES` (`handlers.lambda_schedule.<entry>` in serverless.yml), the
jobs `rq cron workers/cron.py` schedules when Corral runs without Lambda.

Each one only enqueues the worker job by dotted path; the work itself runs on the
workers, next to Redis and the hosts. Nothing here imports worker code.

The job id is derived from the schedule tick (the minute of the event's `time`,
which EventBridge sets to the scheduled time and keeps on redelivery), so an
event delivered twice, a retried invocation or two overlapping containers
enqueue the job once.

Without Lambda the same entries run from cron or a systemd timer:

    python -m handlers.lambda_schedule sweep
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

from infra.jobs import SCHEDULES, Schedule
from infra.queue import JobQueue, make_redis
from shared.clock import Clock, parse_iso, utc_now
from shared.settings import Settings

ScheduledEntry = Callable[[dict[str, Any] | None, Any], dict[str, Any]]


def tick_id(prefix: str, event: dict[str, Any] | None, clock: Clock = utc_now) -> str:
    """`<prefix>-YYYYMMDDHHMM` for the minute the event was scheduled for, or for
    now when the event carries no time (a manual or cron invocation)."""
    when: datetime | None = None
    raw = (event or {}).get("time")
    if isinstance(raw, str):
        try:
            when = parse_iso(raw)
        except ValueError:
            when = None
    return f"{prefix}-{(when or clock()):%Y%m%d%H%M}"


def make_entry(
    schedule: Schedule, jobs: Callable[[], JobQueue], clock: Clock = utc_now
) -> ScheduledEntry:
    """A Lambda handler that enqueues `schedule`'s job once per schedule tick."""

    def entry(event: dict[str, Any] | None, context: Any) -> dict[str, Any]:
        job_id = tick_id(schedule.name, event, clock)
        enqueued = jobs().enqueue_periodic(schedule, job_id)
        return {"job_id": job_id, "function": schedule.job.function, "enqueued": enqueued}

    entry.__name__ = schedule.entry
    return entry


@functools.cache
def _production_jobs() -> JobQueue:
    """Built on the first event and kept for the life of the container."""
    settings = Settings.from_env()
    return JobQueue(make_redis(settings), settings)


ENTRIES: dict[str, ScheduledEntry] = {
    schedule.name: make_entry(schedule, _production_jobs) for schedule in SCHEDULES
}
_BY_ENTRY = {schedule.entry: ENTRIES[schedule.name] for schedule in SCHEDULES}


def __getattr__(name: str) -> ScheduledEntry:
    """What serverless.yml points at: `handlers.lambda_schedule.<entry>`, e.g.
    `check_hosts` (the Lambda runtime looks the handler up with getattr)."""
    try:
        return _BY_ENTRY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in ENTRIES:
        print(f"usage: python -m handlers.lambda_schedule {{{'|'.join(ENTRIES)}}}", file=sys.stderr)
        return 2
    print(json.dumps(ENTRIES[argv[0]](None, None)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
