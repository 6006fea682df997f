"""Reading what containers do, for DockerDriver: resource samples and logs.

Samples: one listing of the host's managed containers (with the size of each
writable layer, which is what a container wrote to disk), then, concurrently, one
`one-shot` stats reading and one inspect per live container. A one-shot reading
skips the engine's second sample (`stream=False` alone waits ~2 s per container);
the engine still answers on its next collection tick, about a second, but every
reading taken meanwhile shares that tick, so a host costs about a second whatever
its number of containers. CPU percentages come from two successive samples (the
collector keeps the previous counters), not from the engine's own pair.

Logs: the engine's `logs` endpoint, stdout and stderr read separately so that each
line says which stream it came from, merged by their timestamps.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import docker.errors
import docker.utils

from shared.health import NS_PER_SECOND, LogLine, Stats
from shared.runtime import LABEL_MANAGED, LABEL_WORKLOAD, RuntimeState

# Concurrent readings per host; the SDK's connection pool holds 10.
MAX_CONCURRENT_READINGS = 8
_ONE_SHOT_API = "1.41"

_STATES: dict[str, RuntimeState] = {
    "running": RuntimeState.RUNNING,
    "restarting": RuntimeState.RUNNING,
    "paused": RuntimeState.PAUSED,
}
_TIMESTAMP = re.compile(
    r"^(?P<base>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(?P<frac>\d+))?(?P<tz>Z|[+-]\d\d:\d\d)$"
)


def stats(api: Any, workload_ids: Sequence[str]) -> dict[str, Stats]:
    wanted = set(workload_ids)
    if not wanted:
        return {}
    summaries = api.containers(all=True, size=True, filters={"label": f"{LABEL_MANAGED}=true"})
    targets: dict[str, Mapping[str, Any]] = {}
    for summary in summaries:
        workload_id = (summary.get("Labels") or {}).get(LABEL_WORKLOAD)
        if workload_id in wanted and workload_id not in targets:
            targets[workload_id] = summary
    if not targets:
        return {}
    one_shot = not docker.utils.version_lt(api.api_version, _ONE_SHOT_API)
    workers = min(MAX_CONCURRENT_READINGS, len(targets))
    with ThreadPoolExecutor(workers, thread_name_prefix="docker-stats") as pool:
        futures = [
            pool.submit(_sample, api, workload_id, summary, one_shot)
            for workload_id, summary in targets.items()
        ]
        samples = [future.result() for future in futures]
    return {sample.workload_id: sample for sample in samples if sample is not None}


def _sample(api: Any, workload_id: str, summary: Mapping[str, Any], one_shot: bool) -> Stats | None:
    state = _STATES.get(str(summary.get("State", "")), RuntimeState.STOPPED)
    disk = int(summary.get("SizeRw") or 0)
    if state is RuntimeState.STOPPED:
        return Stats(workload_id, state, sampled_ns=time.time_ns(), disk_bytes=disk)
    container = summary["Id"]
    try:
        if one_shot:
            raw = api.stats(container, stream=False, one_shot=True)
        else:
            raw = api.stats(container, stream=False)
        attrs = api.inspect_container(container)
    except docker.errors.NotFound:  # removed since the listing
        return None
    cpu = (raw.get("cpu_stats") or {}).get("cpu_usage") or {}
    return Stats(
        workload_id,
        state,
        sampled_ns=parse_ns(raw.get("read")) or time.time_ns(),
        cpu_ns=int(cpu.get("total_usage") or 0),
        memory_bytes=memory_in_use(raw.get("memory_stats") or {}),
        disk_bytes=disk,
        started_ns=parse_ns((attrs.get("State") or {}).get("StartedAt")),
    )


def memory_in_use(memory: Mapping[str, Any]) -> int:
    """Usage less the page cache the kernel can drop at once, as `docker stats` shows it
    (cgroup v1 reports `total_inactive_file`, v2 `inactive_file`)."""
    usage = int(memory.get("usage") or 0)
    detail = memory.get("stats") or {}
    for key in ("total_inactive_file", "inactive_file"):
        if key in detail and int(detail[key]) < usage:
            return usage - int(detail[key])
    return usage


def parse_ns(text: str | None) -> int | None:
    """An engine timestamp (RFC 3339, nanoseconds) as unix ns; None for the zero time."""
    if not text:
        return None
    match = _TIMESTAMP.match(text)
    if match is None:
        return None
    tz = "+00:00" if match["tz"] == "Z" else match["tz"]
    moment = datetime.fromisoformat(match["base"] + tz)
    if moment.year <= 1:
        return None
    nanos = int((match["frac"] or "0").ljust(9, "0")[:9])
    return int(moment.timestamp()) * NS_PER_SECOND + nanos


def logs(api: Any, name: str, tail: int, since_ns: int | None) -> list[LogLine]:
    params: dict[str, Any] = {"timestamps": True, "tail": tail}
    if since_ns is not None and since_ns >= NS_PER_SECOND:
        # Whole seconds for the engine (a float would lose the nanoseconds); the exact
        # cut is made below.
        params["since"] = since_ns // NS_PER_SECOND
    try:
        out = api.logs(name, stdout=True, stderr=False, **params)
        err = api.logs(name, stdout=False, stderr=True, **params)
    except docker.errors.NotFound:
        return []
    lines = _lines(out, "stdout") + _lines(err, "stderr")
    if since_ns is not None:
        lines = [line for line in lines if line.at_ns is not None and line.at_ns >= since_ns]
    lines.sort(key=lambda line: line.at_ns or 0)
    return lines[-tail:] if tail > 0 else []


def _lines(raw: bytes, stream: str) -> list[LogLine]:
    found: list[LogLine] = []
    for entry in raw.decode("utf-8", errors="replace").split("\n"):
        if not entry:
            continue
        stamp, _, text = entry.partition(" ")
        at_ns = parse_ns(stamp)
        if at_ns is None:  # not a timestamp: keep the whole entry as text
            found.append(LogLine(text=entry, stream=stream, at_ns=found[-1].at_ns if found else 0))
            continue
        found.append(LogLine(text=text.removesuffix("\r"), stream=stream, at_ns=at_ns))
    return found
