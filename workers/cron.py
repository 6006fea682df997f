"""Scheduled jobs for `rq cron workers/cron.py` when Corral runs plainly: every
schedule of the registry (`infra.jobs.SCHEDULES`). When deployed, the scheduled
Lambdas enqueue the same jobs instead (handlers/lambda_schedule.py).

rq cron enqueues with rq's default serializer, so these jobs (which take no
arguments) go to their own queue, `infra.jobs.CRON_QUEUE`, served by a worker
started without the JSON serializer."""

from __future__ import annotations

from rq import cron
from rq.utils import import_attribute

from infra import logs
from infra.jobs import CRON_QUEUE, SCHEDULES

logs.configure(unless_set=True)  # rq cron loads this file as its configuration

for schedule in SCHEDULES:
    cron.register(
        import_attribute(schedule.job.function),
        CRON_QUEUE,
        interval=schedule.interval_seconds,
        job_timeout=schedule.timeout_seconds,
    )
