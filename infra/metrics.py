"""Corral's Prometheus metrics (prometheus_client), and the text GET /metrics serves.

Counted where things happen, in whichever process does them:
- requests by route template, method and status, with latency (the API's
  `handlers.telemetry` middleware);
- operations by kind and outcome, with their duration from being asked to being
  finished (`workers.jobs`); jobs by function and outcome, with their run time, and
  what the periodic jobs report (sweeps, reconcile, host checks, health collection:
  `workers.worker`).
Read from the table and Redis when scraped (`FleetCollector`): queue depth and the
age of the oldest waiting job per queue, each host's capacity, use and measured load,
workloads by status.

Processes: with PROMETHEUS_MULTIPROC_DIR set (gunicorn.conf.py sets one for the API;
workers and rq cron on the same machine write to it too), every process writes its
figures there and GET /metrics sums them; without it, a process serves its own.
prometheus_client reads that variable when it is first imported: set it before.

Never imported on the Lambda cold path: only gunicorn's app (handlers.asgi) and the
workers load this module."""

from __future__ import annotations

import os
import time
from collections import Counter as Tally
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.exceptions import RedisError

from infra.jobs import CRON_QUEUE
from shared.errors import CorralError

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
# Request latencies: most answers take milliseconds; waits and log follows, seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
OPERATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

REQUESTS = Counter("corral_http_requests", "HTTP requests answered.", ["route", "method", "status"])
REQUEST_SECONDS = Histogram(
    "corral_http_request_duration_seconds",
    "Time to answer an HTTP request.",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)
OPERATIONS = Counter(
    "corral_operations", "Operations finished, by kind and outcome.", ["kind", "outcome"]
)
OPERATION_SECONDS = Histogram(
    "corral_operation_duration_seconds",
    "From an operation's creation to its end.",
    ["kind", "outcome"],
    buckets=OPERATION_BUCKETS,
)
JOBS = Counter(
    "corral_jobs", "Jobs run by the workers, by function and outcome.", ["job", "outcome"]
)
JOB_SECONDS = Histogram(
    "corral_job_duration_seconds", "Time a worker spent on a job.", ["job"],
    buckets=OPERATION_BUCKETS,
)  # fmt: skip
PERIODIC_RESULTS = Counter(
    "corral_periodic_results",
    "What the periodic jobs (sweep, reconcile, host checks, health collection) reported, "
    "by job and item kind.",
    ["job", "result"],
)


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    REQUESTS.labels(route, method, str(status)).inc()
    REQUEST_SECONDS.labels(route, method).observe(seconds)


def observe_operation(kind: str, outcome: str, seconds: float) -> None:
    OPERATIONS.labels(kind, outcome).inc()
    OPERATION_SECONDS.labels(kind, outcome).observe(max(seconds, 0.0))


def observe_job(job: str, outcome: str, seconds: float, result: Any = None) -> None:
    JOBS.labels(job, outcome).inc()
    JOB_SECONDS.labels(job).observe(seconds)
    for name, count in periodic_counts(result).items():
        PERIODIC_RESULTS.labels(job, name).inc(count)


def periodic_counts(result: Any) -> dict[str, int]:
    """What a periodic job's return value counts: a number of items (the sweep), lists
    by kind (the reconciler), a word per host (host checks), numbers by name."""
    if isinstance(result, bool) or result is None:
        return {}
    if isinstance(result, int):
        return {"items": result}
    counts: Tally[str] = Tally()
    if isinstance(result, Mapping):
        for key, value in result.items():
            if isinstance(value, list | tuple):
                counts[str(key)] += len(value)
            elif isinstance(value, int) and not isinstance(value, bool):
                counts[str(key)] += value
            elif isinstance(value, str):
                counts[value] += 1
    return dict(counts)


class FleetCollector(Collector):
    """Figures read when /metrics is scraped, from the table and Redis."""

    def __init__(self, deps: Any) -> None:
        self._deps = deps

    def collect(self) -> Iterator[Metric]:
        yield from self._queues()
        try:
            yield from self._fleet()
        except CorralError:
            return  # the table did not answer: the scrape shows the rest

    def _queues(self) -> Iterator[Metric]:
        settings, redis = self._deps.settings, self._deps.redis
        depth = GaugeMetricFamily(
            "corral_queue_depth", "Jobs waiting, per queue.", labels=["queue"]
        )
        oldest = GaugeMetricFamily(
            "corral_queue_oldest_job_age_seconds",
            "Age of the job waiting longest, per queue (0 when empty).",
            labels=["queue"],
        )
        for name in (settings.queue_name, settings.priority_queue_name, CRON_QUEUE):
            key = f"rq:queue:{name}"
            try:
                waiting = int(redis.llen(key))
                first = redis.lindex(key, 0)
                enqueued = redis.hget(f"rq:job:{first.decode()}", "enqueued_at") if first else None
            except RedisError:
                continue
            depth.add_metric([name], waiting)
            oldest.add_metric([name], _age(enqueued))
        yield depth
        yield oldest

    def _fleet(self) -> Iterator[Metric]:
        repo = self._deps.repo
        hosts = repo.hosts.list()
        labels = ["host", "resource"]
        capacity = GaugeMetricFamily("corral_host_capacity", "A host's capacity.", labels=labels)
        used = GaugeMetricFamily("corral_host_used", "What a host has reserved.", labels=labels)
        load = GaugeMetricFamily(
            "corral_host_load", "A host's measured load (collector's last sum).", labels=labels
        )
        for host in hosts:
            for name, value in host.capacity.to_api().items():
                capacity.add_metric([host.name, name], float(value))
            for name, value in host.used.to_api().items():
                used.add_metric([host.name, name], float(value))
            if host.load is not None:
                load.add_metric([host.name, "cpu_percent"], host.load.cpu_percent)
                load.add_metric([host.name, "memory_mb"], float(host.load.memory_mb))
                load.add_metric([host.name, "disk_mb"], float(host.load.disk_mb))
        statuses: Tally[str] = Tally()
        for cluster in repo.clusters.list():
            statuses.update(w.status.value for w in repo.workloads.in_cluster(cluster.id))
        workloads = GaugeMetricFamily("corral_workloads", "Workloads by status.", labels=["status"])
        for status, count in sorted(statuses.items()):
            workloads.add_metric([status], count)
        yield from (capacity, used, load, workloads)


def _age(enqueued_at: bytes | None) -> float:
    if not enqueued_at:
        return 0.0
    from datetime import UTC, datetime

    try:
        moment = datetime.fromisoformat(enqueued_at.decode().replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, time.time() - moment.timestamp())


def exposition(deps: Any) -> bytes:
    """The text of GET /metrics: every process's counters, then the fleet's figures."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        counted = CollectorRegistry()
        multiprocess.MultiProcessCollector(counted)  # type: ignore[no-untyped-call]
    else:
        counted = REGISTRY
    fleet = CollectorRegistry(auto_describe=False)
    fleet.register(FleetCollector(deps))
    return generate_latest(counted) + generate_latest(fleet)


def process_gone(pid: int) -> None:
    """gunicorn's child_exit hook: drop a dead process's live gauges."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
