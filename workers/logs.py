"""The job that reads a workload's output from its host for a waiting API request.

Enqueued on the priority queue by `infra.host_calls.HostCalls` (dotted path
`workers.logs.fetch_logs`); it answers through the reply key, never raises, and
does nothing once the request stopped waiting. Host error details stay in the
worker's log: tenants see a code, not the host's address.
"""

from __future__ import annotations

import logging
from typing import Any

from infra.host_calls import past_deadline, reply
from shared.errors import HostError, NotFound
from shared.health import LogLine, newest_within
from workers import context

log = logging.getLogger("corral.logs")

# Codes of the answer's "error"; the handler maps them to API errors.
HOST_TIMEOUT = "host_timeout"
HOST_ERROR = "host_error"


def fetch_logs(
    reply_to: str,
    deadline: float,
    host_id: str,
    workload_id: str,
    tail: int,
    since_ns: int | None,
) -> str:
    """RQ entry point. Replies {"lines": [[at_ns, stream, text], ...], "truncated": bool}
    or {"error": code}; returns what it replied, in short."""
    if past_deadline(deadline):
        return "expired"
    ctx = context.current()
    answer = read_logs(ctx, host_id, workload_id, tail, since_ns)
    reply(ctx.jobs.redis, reply_to, answer)
    return str(answer.get("error", "ok"))


def read_logs(
    ctx: context.WorkerContext, host_id: str, workload_id: str, tail: int, since_ns: int | None
) -> dict[str, Any]:
    try:
        host = ctx.repo.hosts.get(host_id)
        driver = ctx.drivers.for_host(host)
        lines: list[LogLine] = driver.logs(workload_id, tail, since_ns)
    except NotFound:
        return {"error": HOST_ERROR}
    except HostError as exc:
        log.warning("logs of %s on host %s: %s", workload_id, host_id, exc)
        return {"error": HOST_TIMEOUT if exc.transient else HOST_ERROR}
    except Exception:
        log.exception("logs of %s on host %s failed", workload_id, host_id)
        return {"error": HOST_ERROR}
    kept, truncated = newest_within(lines, tail, ctx.settings.logs_max_bytes)
    return {"lines": [line.to_wire() for line in kept], "truncated": truncated}
