"""Every job Corral runs on its workers, as data: the function's dotted path, the
queue it goes to, and for the periodic jobs their schedule and Lambda entry.

The handlers enqueue by dotted path and never import worker code, so nothing here
imports a job function; the worker resolves the paths. Everything that wires a job
reads it from here: `infra.queue` and `infra.host_calls` (what they enqueue),
`workers/cron.py` (rq cron), `handlers/lambda_schedule.py` (the scheduled Lambdas)
and `workers/worker.py` (the modules loaded before forking). `serverless.yml` is
checked against it by tests/deploy/test_lambda_schedule.py.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from shared.settings import Settings


class Lane(enum.Enum):
    """Which of the two JSON-serialized queues (named in Settings) a job goes to."""

    OPERATIONS = "operations"  # operation jobs and the periodic ones
    PRIORITY = "priority"  # jobs a request is waiting for

    def queue_name(self, settings: Settings) -> str:
        if self is Lane.PRIORITY:
            return settings.priority_queue_name
        return settings.queue_name


@dataclass(frozen=True)
class Job:
    function: str  # dotted path, e.g. "workers.jobs.run_operation"
    lane: Lane


@dataclass(frozen=True)
class Schedule:
    """A job enqueued every `interval_seconds` with no arguments."""

    name: str  # the job id prefix of the Lambda's ticks, e.g. "check-hosts"
    job: Job
    interval_seconds: int
    timeout_seconds: int

    @property
    def entry(self) -> str:
        """The scheduled Lambda's handler attribute in `handlers.lambda_schedule`."""
        return self.name.replace("-", "_")

    @property
    def rate(self) -> str:
        """The EventBridge rate expression: its finest grain is one minute, so
        shorter intervals run once a minute there."""
        minutes = max(1, math.ceil(self.interval_seconds / 60))
        return f"rate({minutes} minute{'' if minutes == 1 else 's'})"


RUN_OPERATION = Job("workers.jobs.run_operation", Lane.OPERATIONS)
FETCH_LOGS = Job("workers.logs.fetch_logs", Lane.PRIORITY)
SCAN_HOST_KEY = Job("workers.hosts.scan_key", Lane.PRIORITY)
# Managed databases: the server's side of a create or a delete (the record is the truth).
CREATE_DATABASE = Job("workers.databases.create_database", Lane.OPERATIONS)
DELETE_DATABASE = Job("workers.databases.delete_database", Lane.OPERATIONS)
# Webhooks: one log's new events to its endpoints (enqueued by a commit).
DELIVER_WEBHOOKS = Job("workers.webhooks.deliver_log", Lane.OPERATIONS)

# One host's share of a periodic pass (argument: the host id), enqueued by the pass's
# scheduled job (workers/fleet.py): a pass over 1,000 hosts is 1,000 small jobs that
# the workers share, and a slow or dead host delays only its own.
RECONCILE_HOST = Job("workers.reconcile.reconcile_one_host", Lane.OPERATIONS)
CHECK_HOST = Job("workers.hosts.check_one_host", Lane.OPERATIONS)
COLLECT_HOST = Job("workers.collector.collect_one_host", Lane.OPERATIONS)
# Once per host older than the workloads-by-status counters (enqueued by the reconcile
# pass until it succeeds): set them from its workloads.
RECOUNT_HOST = Job("workers.fleet.recount_one_host", Lane.OPERATIONS)
HOST_JOBS = (RECONCILE_HOST, CHECK_HOST, COLLECT_HOST, RECOUNT_HOST)

SCHEDULES = (
    Schedule("sweep", Job("workers.sweeps.sweep_expired", Lane.OPERATIONS), 10, 120),
    Schedule("reconcile", Job("workers.fleet.reconcile_fleet", Lane.OPERATIONS), 60, 300),
    Schedule("check-hosts", Job("workers.fleet.check_fleet", Lane.OPERATIONS), 30, 120),
    # A health measurement is stale after Settings.health_stale_seconds (3 passes).
    Schedule(
        "collect-health",
        Job("workers.fleet.collect_fleet", Lane.OPERATIONS),
        Settings.collect_interval_seconds,
        120,
    ),
    # Retries that came due, and what a lost trigger missed.
    Schedule("deliver-webhooks", Job("workers.webhooks.deliver_all", Lane.OPERATIONS), 30, 300),
)

JOBS = (
    RUN_OPERATION,
    FETCH_LOGS,
    SCAN_HOST_KEY,
    CREATE_DATABASE,
    DELETE_DATABASE,
    *HOST_JOBS,
    DELIVER_WEBHOOKS,
    *(schedule.job for schedule in SCHEDULES),
)

# rq cron enqueues with rq's default serializer (it has no other), so without
# Lambda the periodic jobs go to this queue, served by a worker started without the
# JSON serializer, instead of their lane's.
CRON_QUEUE = "corral-cron"
