"""The scheduled entries enqueue one job per schedule tick, by dotted path, on
the real Redis."""

from __future__ import annotations

import ast
import subprocess
import sys
from datetime import UTC, datetime

import pytest
import redis as redis_lib
import yaml
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from handlers import lambda_schedule
from services.deps import Deps
from tests.deploy.conftest import ROOT, corral_env
from tests.deploy.events import scheduled_event


def queued_ids(deps: Deps) -> list[str]:
    return list(deps.jobs.queue.get_job_ids())


def test_sweep_enqueues_once_per_tick(deps: Deps) -> None:
    sweep = lambda_schedule.make_entry(lambda_schedule.SWEEP, "sweep", lambda: deps.jobs)
    event = scheduled_event("2026-03-01T12:34:00Z")

    first = sweep(event, None)
    again = sweep(event, None)  # a redelivered event, or an overlapping container

    assert first == {
        "job_id": "sweep-202603011234",
        "function": lambda_schedule.SWEEP,
        "enqueued": True,
    }
    assert again == first | {"enqueued": False}
    assert queued_ids(deps) == ["sweep-202603011234"]
    job = Job.fetch("sweep-202603011234", connection=deps.redis, serializer=JSONSerializer)
    assert job.func_name == "workers.sweeps.sweep_expired"
    assert (list(job.args), job.kwargs) == ([], {})


def test_each_tick_and_each_schedule_gets_its_own_job(deps: Deps) -> None:
    sweep = lambda_schedule.make_entry(lambda_schedule.SWEEP, "sweep", lambda: deps.jobs)
    reconcile = lambda_schedule.make_entry(
        lambda_schedule.RECONCILE, "reconcile", lambda: deps.jobs
    )
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
    assert job.func_name == "workers.reconcile.reconcile"


def test_a_finished_tick_is_not_enqueued_again(deps: Deps) -> None:
    """A retried invocation after the job ran must not run it twice."""
    job_id = "sweep-202603011234"
    assert lambda_schedule.enqueue_periodic(deps.jobs, lambda_schedule.SWEEP, job_id)
    job = deps.jobs.queue.fetch_job(job_id)
    deps.jobs.queue.remove(job)  # as a worker does when it takes the job
    assert not lambda_schedule.enqueue_periodic(deps.jobs, lambda_schedule.SWEEP, job_id)
    assert queued_ids(deps) == []


def test_a_manual_invocation_uses_the_current_minute() -> None:
    clock = lambda: datetime(2026, 3, 1, 7, 5, 42, tzinfo=UTC)  # noqa: E731
    assert lambda_schedule.tick_id("sweep", None, clock) == "sweep-202603010705"
    assert lambda_schedule.tick_id("sweep", {"time": "garbage"}, clock) == "sweep-202603010705"
    assert lambda_schedule.tick_id("sweep", {}, clock) == "sweep-202603010705"


def test_production_entries_read_the_environment(
    deps: Deps,
    monkeypatch: pytest.MonkeyPatch,
    moto_endpoint: str,
    redis_url: str,
    redis_conn: redis_lib.Redis,
) -> None:
    for name, value in corral_env(moto_endpoint, redis_url).items():
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


def cron_registrations() -> set[str]:
    """Dotted paths of the functions workers/cron.py registers with rq cron, read
    from its source (importing it would register them for real)."""
    tree = ast.parse((ROOT / "workers" / "cron.py").read_text())
    imported = {
        alias.asname or alias.name: f"{node.module}.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
        for alias in node.names
    }
    return {
        imported[node.args[0].id]
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "register"
        and node.args
        and isinstance(node.args[0], ast.Name)
    }


def test_lambda_schedules_what_rq_cron_schedules() -> None:
    """Deployed on Lambda, EventBridge replaces rq cron: every job workers/cron.py
    schedules has a scheduled entry, and serverless.yml runs every entry."""
    registered = cron_registrations()
    assert registered, "found no cron.register(...) in workers/cron.py"
    assert set(lambda_schedule.SCHEDULES.values()) == registered
    functions = yaml.safe_load((ROOT / "serverless.yml").read_text())["functions"]
    handlers = {
        f["handler"] for f in functions.values() if f.get("events", [{}])[0].get("schedule")
    }
    assert handlers == {
        f"handlers.lambda_schedule.{name.replace('-', '_')}" for name in lambda_schedule.SCHEDULES
    }
