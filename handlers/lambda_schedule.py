"""Scheduled entries: EventBridge calls `sweep`, `reconcile`, `check_hosts` and
`collect_health` (see serverless.yml), the jobs `rq cron workers/cron.py`
schedules when Corral runs without Lambda.

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

from redis.exceptions import RedisError

from infra.queue import JobQueue, make_redis
from shared.clock import Clock, parse_iso, utc_now
from shared.errors import ServiceUnavailable
from shared.settings import Settings

SWEEP = "workers.sweeps.sweep_expired"
RECONCILE = "workers.reconcile.reconcile"
CHECK_HOSTS = "workers.hosts.check_hosts"
COLLECT_HEALTH = "workers.collector.collect_health"
# Entry name (also the job id prefix) -> the job it enqueues; the same jobs as
# workers/cron.py (tests/deploy checks).
SCHEDULES = {
    "sweep": SWEEP,
    "reconcile": RECONCILE,
    "check-hosts": CHECK_HOSTS,
    "collect-health": COLLECT_HEALTH,
}

# A tick's job that no worker picked up within this time is dropped: a later
# tick does the same work.
STALE_AFTER_SECONDS = 600
# The finished job is kept this long, and while it exists the same tick cannot
# enqueue it again (Lambda retries an asynchronous invocation within minutes).
KEEP_FINISHED_SECONDS = 3600

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


def enqueue_periodic(
    jobs: JobQueue, func_path: str, job_id: str, *, stale_after: int = STALE_AFTER_SECONDS
) -> bool:
    """Enqueue `func_path` (no arguments) as job `job_id` unless a job with that id
    exists already. Returns True when this call enqueued it.

    Meant to become `JobQueue.enqueue_periodic`; it only uses the queue's public
    `queue` property, so it works against JobQueue as it is."""
    from rq.exceptions import DuplicateJobError

    try:
        jobs.queue.enqueue(
            func_path,
            job_id=job_id,
            unique=True,
            ttl=stale_after,
            job_timeout=jobs.settings.job_timeout_seconds,
            result_ttl=KEEP_FINISHED_SECONDS,
            failure_ttl=7 * 24 * 3600,
        )
    except DuplicateJobError:
        return False
    except RedisError as exc:
        raise ServiceUnavailable("The job queue did not answer.") from exc
    return True


def make_entry(
    func_path: str, prefix: str, jobs: Callable[[], JobQueue], clock: Clock = utc_now
) -> ScheduledEntry:
    """A Lambda handler that enqueues `func_path` once per schedule tick."""

    def entry(event: dict[str, Any] | None, context: Any) -> dict[str, Any]:
        job_id = tick_id(prefix, event, clock)
        enqueued = enqueue_periodic(jobs(), func_path, job_id)
        return {"job_id": job_id, "function": func_path, "enqueued": enqueued}

    entry.__name__ = prefix
    return entry


@functools.cache
def _production_jobs() -> JobQueue:
    """Built on the first event and kept for the life of the container."""
    settings = Settings.from_env()
    return JobQueue(make_redis(settings), settings)


ENTRIES: dict[str, ScheduledEntry] = {
    name: make_entry(path, name, _production_jobs) for name, path in SCHEDULES.items()
}
# What serverless.yml points at.
sweep = ENTRIES["sweep"]
reconcile = ENTRIES["reconcile"]
check_hosts = ENTRIES["check-hosts"]
collect_health = ENTRIES["collect-health"]


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in ENTRIES:
        print(f"usage: python -m handlers.lambda_schedule {{{'|'.join(ENTRIES)}}}", file=sys.stderr)
        return 2
    print(json.dumps(ENTRIES[argv[0]](None, None)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
