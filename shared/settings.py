"""Settings, read once from the environment into a frozen object that is passed in."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.sealing import SealingError, check_key

VERSION = "0.1.0"


@dataclass(frozen=True)
class Settings:
    table_name: str = "corral"
    dynamodb_endpoint: str | None = None
    aws_region: str = "us-east-1"
    redis_url: str = "redis://127.0.0.1:6379/0"
    queue_name: str = "corral"
    priority_queue_name: str = "corral-priority"
    cors_origins: tuple[str, ...] = field(default_factory=tuple)
    wait_cap_seconds: float = 25.0
    # The most waits (GET /operations/:id/wait) and log follows (logs?follow=1) one
    # API key may hold open at once, across every API process; more get 429.
    max_open_per_key: int = 20
    # Threads per API process for the requests that do not wait (see handlers.asgi).
    web_threads: int = 16
    # Requests a minute each API key may make, unless its cluster's plan says otherwise
    # (0: no limit).
    rate_limit_per_minute: int = 6000
    # Requests a minute all the keys of one cluster together may make, unless its plan
    # says otherwise (0: no cluster-wide limit): a tenant's ten keys share it.
    cluster_rate_limit_per_minute: int = 12000
    # How long a retry with an Idempotency-Key waits for the first request's answer.
    idempotency_wait_seconds: float = 10.0
    # How long a claimed Idempotency-Key may stay without its answer before a retry
    # takes its request for dead and rebuilds the answer from what it wrote: longer
    # than any request lives (gunicorn's timeout, Lambda's 29 s).
    idempotency_lease_seconds: float = 120.0
    key_cache_seconds: int = 300
    job_timeout_seconds: int = 600
    # Jobs one worker process runs at once, one per thread (workers.worker).
    worker_concurrency: int = 4
    max_body_bytes: int = 64 * 1024
    # Workload health: the collector runs every interval; a measurement older than
    # `health_stale_seconds` (3 intervals) shows as unknown.
    collect_interval_seconds: int = 30
    health_stale_seconds: float = 90.0
    # Logs are read from the host by a priority job; the API waits this long for it
    # (keep it under the Redis socket timeout, 10 s: the wait is one BLPOP).
    logs_timeout_seconds: float = 5.0
    logs_follow_cap_seconds: float = 60.0
    logs_poll_seconds: float = 1.0
    logs_max_bytes: int = 1024 * 1024
    # 004's token exchange: tokens are signed with this secret (unset: login is off) and
    # live this long.
    token_secret: str | None = None
    token_ttl_seconds: int = 3600
    # How long the table keeps an event (the audit trail), in days (the items' `ttl`).
    event_retention_days: int = 90
    # How long a reader of an event log waits for a reserved number that is missing
    # (its commit is late, or its process died) before voiding it and reading on.
    event_hole_grace_seconds: float = 5.0
    # How often an events follow reads its log when no notification woke it.
    events_poll_seconds: float = 2.0
    # An events follow ends after this long (`event: end`); the client reconnects
    # with Last-Event-ID.
    events_follow_cap_seconds: float = 300.0
    # Webhook endpoints may be on loopback, link-local or private addresses (tests).
    webhook_allow_private: bool = False
    # Where backup archives go (see README, "Backups"): "folder" (a directory on the
    # worker machines, shared by them and the API) or "s3" (an S3-compatible bucket).
    backup_store: str = "folder"
    backup_folder: str = ".corral/backups"
    backup_s3_bucket: str = ""
    backup_s3_prefix: str = "backups/"
    backup_s3_endpoint: str | None = None  # None: AWS's own endpoint for the region
    backup_s3_region: str | None = None  # None: aws_region
    backup_s3_access_key_id: str | None = None  # None: boto3's usual credential chain
    backup_s3_secret_access_key: str | None = None
    # Keep a container's backups when the container is deleted or expires (they stay
    # listed, downloadable and deletable under its id) instead of deleting them with it.
    keep_backups: bool = False
    # Seals what Corral stores to give back to hosts (an egg's registry password);
    # Fernet key, 32 bytes url-safe base64. Without it, such secrets are refused.
    secret_key: str | None = field(default=None, repr=False)
    version: str = VERSION

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        origins = tuple(
            o.strip() for o in env.get("CORRAL_CORS_ORIGINS", "").split(",") if o.strip()
        )
        return cls(
            table_name=env.get("CORRAL_TABLE", cls.table_name),
            dynamodb_endpoint=env.get("CORRAL_DYNAMODB_ENDPOINT") or None,
            aws_region=env.get("AWS_DEFAULT_REGION", env.get("AWS_REGION", cls.aws_region)),
            redis_url=env.get("CORRAL_REDIS_URL", cls.redis_url),
            queue_name=env.get("CORRAL_QUEUE", cls.queue_name),
            priority_queue_name=env.get("CORRAL_PRIORITY_QUEUE", cls.priority_queue_name),
            cors_origins=origins,
            wait_cap_seconds=float(env.get("CORRAL_WAIT_CAP_SECONDS", cls.wait_cap_seconds)),
            max_open_per_key=int(env.get("CORRAL_MAX_OPEN_PER_KEY", cls.max_open_per_key)),
            web_threads=int(env.get("CORRAL_WEB_THREADS", cls.web_threads)),
            rate_limit_per_minute=int(
                env.get("CORRAL_RATE_LIMIT_PER_MINUTE", cls.rate_limit_per_minute)
            ),
            cluster_rate_limit_per_minute=int(
                env.get("CORRAL_CLUSTER_RATE_LIMIT_PER_MINUTE", cls.cluster_rate_limit_per_minute)
            ),
            idempotency_wait_seconds=float(
                env.get("CORRAL_IDEMPOTENCY_WAIT_SECONDS", cls.idempotency_wait_seconds)
            ),
            idempotency_lease_seconds=float(
                env.get("CORRAL_IDEMPOTENCY_LEASE_SECONDS", cls.idempotency_lease_seconds)
            ),
            key_cache_seconds=int(env.get("CORRAL_KEY_CACHE_SECONDS", cls.key_cache_seconds)),
            job_timeout_seconds=int(env.get("CORRAL_JOB_TIMEOUT_SECONDS", cls.job_timeout_seconds)),
            worker_concurrency=max(
                1, int(env.get("CORRAL_WORKER_CONCURRENCY", cls.worker_concurrency))
            ),
            health_stale_seconds=float(
                env.get("CORRAL_HEALTH_STALE_SECONDS", cls.health_stale_seconds)
            ),
            logs_timeout_seconds=float(
                env.get("CORRAL_LOGS_TIMEOUT_SECONDS", cls.logs_timeout_seconds)
            ),
            logs_follow_cap_seconds=float(
                env.get("CORRAL_LOGS_FOLLOW_CAP_SECONDS", cls.logs_follow_cap_seconds)
            ),
            token_secret=env.get("CORRAL_TOKEN_SECRET") or None,
            token_ttl_seconds=int(env.get("CORRAL_TOKEN_TTL_SECONDS", cls.token_ttl_seconds)),
            event_retention_days=int(
                env.get("CORRAL_EVENT_RETENTION_DAYS", cls.event_retention_days)
            ),
            event_hole_grace_seconds=float(
                env.get("CORRAL_EVENT_HOLE_GRACE_SECONDS", cls.event_hole_grace_seconds)
            ),
            events_poll_seconds=float(
                env.get("CORRAL_EVENTS_POLL_SECONDS", cls.events_poll_seconds)
            ),
            events_follow_cap_seconds=float(
                env.get("CORRAL_EVENTS_FOLLOW_CAP_SECONDS", cls.events_follow_cap_seconds)
            ),
            webhook_allow_private=env.get("CORRAL_WEBHOOK_ALLOW_PRIVATE", "").lower()
            in ("1", "true", "yes"),
            backup_store=env.get("CORRAL_BACKUP_STORE", cls.backup_store),
            backup_folder=env.get("CORRAL_BACKUP_FOLDER", cls.backup_folder),
            backup_s3_bucket=env.get("CORRAL_BACKUP_S3_BUCKET", cls.backup_s3_bucket),
            backup_s3_prefix=env.get("CORRAL_BACKUP_S3_PREFIX", cls.backup_s3_prefix),
            backup_s3_endpoint=env.get("CORRAL_BACKUP_S3_ENDPOINT") or None,
            backup_s3_region=env.get("CORRAL_BACKUP_S3_REGION") or None,
            backup_s3_access_key_id=env.get("CORRAL_BACKUP_S3_ACCESS_KEY_ID") or None,
            backup_s3_secret_access_key=env.get("CORRAL_BACKUP_S3_SECRET_ACCESS_KEY") or None,
            keep_backups=env.get("CORRAL_KEEP_BACKUPS", "").lower() in ("1", "true", "yes"),
            secret_key=_secret_key(env.get("CORRAL_SECRET_KEY")),
        )


def _secret_key(value: str | None) -> str | None:
    """A malformed key stops the process at startup with what to do, not later with a 500."""
    if not value:
        return None
    try:
        return check_key(value)
    except SealingError as exc:
        raise SystemExit(f"corral: {exc}") from exc
