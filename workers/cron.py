"""Scheduled jobs for `rq cron workers/cron.py` when Corral runs plainly.

rq cron enqueues with rq's default serializer, so these jobs (which take no
arguments) go to their own queue, `corral-cron`, served by a worker started
without the JSON serializer. When deployed, the scheduled Lambda enqueues the
same functions (see handlers/lambda_schedule.py)."""

from __future__ import annotations

from rq import cron

from shared.settings import Settings
from workers.collector import collect_health
from workers.hosts import check_hosts
from workers.reconcile import reconcile
from workers.sweeps import sweep_expired

CRON_QUEUE = "corral-cron"

cron.register(sweep_expired, CRON_QUEUE, interval=10, job_timeout=120)
cron.register(check_hosts, CRON_QUEUE, interval=30, job_timeout=120)
cron.register(reconcile, CRON_QUEUE, interval=60, job_timeout=300)
# Workload health; a measurement is stale after Settings.health_stale_seconds (3 passes).
cron.register(
    collect_health, CRON_QUEUE, interval=Settings.collect_interval_seconds, job_timeout=120
)
