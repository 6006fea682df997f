"""gunicorn settings for Corral's HTTP API: `gunicorn -c gunicorn.conf.py`.

Every value can be overridden from the environment, so one file serves a laptop,
a VM and a container. The app (handlers.asgi) serves the WSGI app the Lambda entry
wraps on a thread pool, and the waiting routes as coroutines."""

from __future__ import annotations

import os
import tempfile
from typing import Any


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # honours CPU pinning and cgroup cpusets
    except AttributeError:
        return os.cpu_count() or 1


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


wsgi_app = "handlers.asgi:get_app()"
bind = os.environ.get("CORRAL_BIND", "127.0.0.1:8080").split(",")

# Processes: the classic 2 * cores + 1, capped so a big host does not open a
# Redis and a DynamoDB connection pool per core for an API that mostly waits.
workers = _int("CORRAL_WEB_WORKERS", min(2 * _cores() + 1, 9))
# gunicorn's own asyncio worker: a long-poll wait or a log follow parks on the event
# loop instead of holding a thread (a thread per wait let 200 waits stall /health).
# The other requests run on CORRAL_WEB_THREADS threads per process (shared.settings).
worker_class = "asgi"

# A worker silent for this long is killed; above the wait cap (25 s by default).
timeout = _int("CORRAL_WEB_TIMEOUT", 60)
# On SIGTERM, requests in flight (waits included) get this long to finish.
graceful_timeout = _int("CORRAL_WEB_GRACEFUL_TIMEOUT", 30)
# Behind a load balancer set this above the balancer's idle timeout.
keepalive = _int("CORRAL_WEB_KEEPALIVE", 5)

# Recycle processes now and then, with jitter so they do not restart together.
max_requests = _int("CORRAL_WEB_MAX_REQUESTS", 10000)
max_requests_jitter = max_requests // 10

# Request limits well above what the API accepts; the app answers 413 itself.
limit_request_line = 8190
limit_request_fields = 100

# Each process builds its own app (boto3 clients and Redis pools are not shared
# across fork).
preload_app = False

# The app logs every request itself, as JSON with its request id (handlers.telemetry);
# set CORRAL_ACCESS_LOG=- for gunicorn's own access log as well.
accesslog = os.environ.get("CORRAL_ACCESS_LOG") or None
errorlog = os.environ.get("CORRAL_ERROR_LOG", "-")
loglevel = os.environ.get("CORRAL_LOG_LEVEL", "info")
# Client, request line, status, bytes, duration in microseconds, user agent; never
# headers (the Authorization header carries a secret).
access_log_format = '%(h)s "%(r)s" %(s)s %(B)s %(D)sus "%(a)s"'
# Trust X-Forwarded-* only from these addresses (a local proxy by default).
forwarded_allow_ips = os.environ.get("CORRAL_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
proc_name = "corral-api"


# GET /metrics sums what every process counted (prometheus_client's multiprocess
# mode): each writes its figures to this directory, which must start empty. Workers
# and rq cron on this machine may write to it too (set the same variable for them).
# Without it set, a fresh directory is made for this run of the API.
def on_starting(server: Any) -> None:
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="corral-metrics-")


def child_exit(server: Any, worker: Any) -> None:
    """A process that exited leaves its counters (they still count) but not its gauges."""
    from infra.metrics import process_gone

    process_gone(worker.pid)
