"""What jobs run with. RQ calls jobs as plain functions, so each worker process
builds its context once from the environment; tests install their own."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from infra.drivers.factory import DriverFactory
from infra.queue import JobQueue, make_redis
from infra.table.dynamo import Dynamo, make_client
from infra.table.repository import Repository
from services.deps import wire_events
from shared.clock import Clock, utc_now
from shared.settings import Settings


@dataclass
class WorkerContext:
    repo: Repository
    jobs: JobQueue
    drivers: DriverFactory
    settings: Settings
    clock: Clock = utc_now

    def __post_init__(self) -> None:
        wire_events(self.repo, self.jobs, self.settings)


_installed: WorkerContext | None = None
_building = threading.Lock()  # a worker's threads ask for it at once


def install(context: WorkerContext | None) -> None:
    """Use `context` for jobs run in this process (None: build from the environment)."""
    global _installed
    _installed = context


def current() -> WorkerContext:
    global _installed
    with _building:
        if _installed is None:
            settings = Settings.from_env()
            _installed = WorkerContext(
                repo=Repository(Dynamo(make_client(settings), settings.table_name)),
                jobs=JobQueue(make_redis(settings), settings),
                drivers=DriverFactory(),
                settings=settings,
            )
        return _installed
