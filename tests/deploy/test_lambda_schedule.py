"""The scheduled entries enqueue one job per schedule tick, by dotted path, on
the real Redis; rq cron, the Lambda entries, serverless.yml and the worker all
follow the jobs registry (infra.jobs)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import pytest
import redis as redis_lib
import yaml
from rq import Queue
from rq.cron import CronScheduler
from rq.job import Job
from rq.serializers import JSONSerializer
from rq.utils import import_attribute

from handlers import lambda_schedule
from infra.jobs import CRON_QUEUE, JOBS, SCHEDULES, Schedule
from services.deps import Deps
from tests.deploy.conftest import ROOT, corral_env
from tests.deploy.events import scheduled_event


def queued_ids(deps: Deps) -> list[str]:
    return list(deps.jobs.queue.get_job_ids())


def schedule(name: str) -> Schedule:
    return next(s for s in SCHEDULES if s.name == name)


def test_sweep_enqueues_once_per_tick(deps: Deps) -> None:
    sweep = lambda_schedule.make_entry(schedule("sweep"), lambda: deps.jobs)
    event = scheduled_event("2026-03-01T12:34:00Z")

    first = sweep(event, None)
    again = sweep(event, None)  # a redelivered event, or an overlapping container

    assert first == {
        "job_id": "sweep-202603011234",
        "function": "workers.sweeps.sweep_expired",
        "enqueued": True,
    }
    assert again == first | {"enqueued": False}
    assert queued_ids(deps) == ["sweep-202603011234"]
    job = Job.fetch("sweep-202603011234", connection=deps.redis, serializer=JSONSerializer)
    assert job.func_name == "workers.sweeps.sweep_expired"
    assert (list(job.args), job.kwargs) == ([], {})


def test_each_tick_and_each_schedule_gets_its_own_job(deps: Deps) -> None:
    sweep = lambda_schedule.make_entry(schedule("sweep"), lambda: deps.jobs)
    reconcile = lambda_schedule.make_entry(schedule("reconcile"), lambda: deps.jobs)
    # Seconds within the minute do not matter: the tick is the minute.
    sweep(scheduled_event("2026-03-01T12:34:00Z"), None)
    sweep(scheduled_event("2026-03-01T12:34:59Z"), None)
    sweep(scheduled_event("2026-03-01T12:35:00Z"), None)
    reconcile(scheduled_event("2026-03-01T12:35:00Z"), None)

    assert sorted(queued_ids(deps)) == [
        "reconcile-202603011235",
        "sweep-202603011234",
        "sweep-202603011235",
    ]
    job = Job.fetch("reconcile-202603011235", connection=deps.redis, serializer=JSONSerializer)
    assert job.func_name == "workers.fleet.reconcile_fleet"


def test_a_finished_tick_is_not_enqueued_again(deps: Deps) -> None:
    """A retried invocation after the job ran must not run it twice."""
    job_id = "sweep-202603011234"
    assert deps.jobs.enqueue_periodic(schedule("sweep"), job_id)
    job = deps.jobs.queue.fetch_job(job_id)
    deps.jobs.queue.remove(job)  # as a worker does when it takes the job
    assert not deps.jobs.enqueue_periodic(schedule("sweep"), job_id)
    assert queued_ids(deps) == []


def test_a_manual_invocation_uses_the_current_minute() -> None:
    clock = lambda: datetime(2026, 3, 1, 7, 5, 42, tzinfo=UTC)  # noqa: E731
    assert lambda_schedule.tick_id("sweep", None, clock) == "sweep-202603010705"
    assert lambda_schedule.tick_id("sweep", {"time": "garbage"}, clock) == "sweep-202603010705"
    assert lambda_schedule.tick_id("sweep", {}, clock) == "sweep-202603010705"


def test_production_entries_read_the_environment(
    deps: Deps,
    monkeypatch: pytest.MonkeyPatch,
    table_endpoint: str,
    redis_url: str,
    redis_conn: redis_lib.Redis[bytes],
) -> None:
    for name, value in corral_env(table_endpoint, redis_url).items():
        monkeypatch.setenv(name, value)
    lambda_schedule._production_jobs.cache_clear()
    try:
        first = lambda_schedule.sweep(scheduled_event("2026-03-01T12:34:00Z"), None)
        again = lambda_schedule.sweep(scheduled_event("2026-03-01T12:34:00Z"), None)
        tick = lambda_schedule.reconcile(scheduled_event("2026-03-01T12:35:00Z"), None)
    finally:
        lambda_schedule._production_jobs.cache_clear()
    assert (first["enqueued"], again["enqueued"], tick["enqueued"]) == (True, False, True)
    queue = Queue(deps.settings.queue_name, connection=redis_conn, serializer=JSONSerializer)
    assert sorted(queue.get_job_ids()) == ["reconcile-202603011235", "sweep-202603011234"]


def test_the_schedule_module_imports_no_worker_code() -> None:
    code = (
        "import sys, handlers.lambda_schedule\n"
        "print(sorted(m for m in sys.modules if m == 'workers' or m.startswith('workers.')"
        " or m in ('docker', 'paramiko')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_registered_job_resolves_to_a_function() -> None:
    """The dotted paths are how rq finds the jobs: a renamed function must fail here,
    not on a worker."""
    for job in JOBS:
        assert callable(import_attribute(job.function)), job


def test_rq_cron_runs_every_schedule_of_the_registry() -> None:
    """`rq cron workers.cron` loads the file this way."""
    scheduler = CronScheduler(connection=redis_lib.Redis())  # never connects here
    scheduler.load_config_from_file("workers.cron")
    registered = {
        (job.func_name, job.queue_name, job.interval, job.job_options["job_timeout"])
        for job in scheduler.get_jobs()
    }
    assert registered == {
        (s.job.function, CRON_QUEUE, s.interval_seconds, s.timeout_seconds) for s in SCHEDULES
    }
    assert len(scheduler.get_jobs()) == len(SCHEDULES)


def test_the_lambda_entries_are_the_registry_schedules() -> None:
    for s in SCHEDULES:
        assert getattr(lambda_schedule, s.entry) is lambda_schedule.ENTRIES[s.name]
    assert set(lambda_schedule.ENTRIES) == {s.name for s in SCHEDULES}
    with pytest.raises(AttributeError):
        _ = lambda_schedule.not_a_schedule


def test_lambda_schedules_what_the_registry_schedules() -> None:
    """Deployed on Lambda, EventBridge replaces rq cron: serverless.yml runs one
    scheduled function per schedule of the registry, at the registry's rate (or once
    a minute, EventBridge's finest grain), and no other."""
    functions = yaml.safe_load((ROOT / "serverless.yml").read_text())["functions"]
    scheduled = {
        f["handler"]: [event["schedule"] for event in f["events"]]
        for f in functions.values()
        if any("schedule" in event for event in f.get("events", []))
    }
    assert scheduled == {f"handlers.lambda_schedule.{s.entry}": [s.rate] for s in SCHEDULES}


@pytest.mark.parametrize(
    ("interval", "rate"),
    [
        (10, "rate(1 minute)"),
        (60, "rate(1 minute)"),
        (61, "rate(2 minutes)"),
        (300, "rate(5 minutes)"),
    ],
)
def test_the_rate_is_the_interval_in_whole_minutes(interval: int, rate: str) -> None:
    assert Schedule("x", JOBS[0], interval, 60).rate == rate


def test_the_worker_preloads_every_registered_job() -> None:
    code = (
        "import json, sys, workers.worker\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('workers.'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert {job.function.rpartition(".")[0] for job in JOBS} <= set(json.loads(out.stdout))
