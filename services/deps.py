"""What the services and HTTP resources are built from; production defaults are made in
`handlers.app.get_app`, the tests and benchmarks build their own."""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis

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
