"""What the services and HTTP resources are built from; production defaults are made in
`handlers.app.get_app`, the tests and benchmarks build their own."""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis

from infra.event_numbers import RedisNumbers
from infra.queue import JobQueue
from infra.table.repository import Repository
from shared.clock import Clock, IdFactory, new_id, new_operation_id, utc_now
from shared.settings import Settings


@dataclass(frozen=True)
class Deps:
    repo: Repository
    jobs: JobQueue
    redis: Redis[bytes]
    settings: Settings
    clock: Clock = utc_now
    new_id: IdFactory = new_id
    new_operation_id: IdFactory = new_operation_id

    def __post_init__(self) -> None:
        wire_events(self.repo, self.jobs, self.settings)


def wire_events(repo: Repository, jobs: JobQueue, settings: Settings) -> None:
    """Keep events as long as the settings say, wait for a late event number as long
    as they say, take the numbers from Redis (in blocks the table reserves), and
    announce every commit's events on the queue (followers wake, webhooks deliver)."""
    repo.db.events.retention_seconds = settings.event_retention_days * 24 * 3600
    repo.db.events.hole_grace_seconds = settings.event_hole_grace_seconds
    repo.db.on_events = jobs.announce_events
    repo.db.events.numbers = RedisNumbers(jobs.redis, repo.db)
