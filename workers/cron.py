"""Scheduled jobs for `rq cron workers/cron.py` when Corral runs plainly.

rq cron enqueues with rq's default serializer, so these jobs (which take no
arguments) go to their own queue, `corral-cron`, served by a worker started
without the JSON serializer. When deployed, the scheduled Lambda enqueues the
same functions (see handlers/lambda_schedule.py)."""

from __future__ import annotations

from rq import cron

from workers.hosts import check_hosts

CRON_QUEUE = "corral-cron"

cron.register(check_hosts, CRON_QUEUE, interval=30, job_timeout=120)
