"""A closed-loop HTTP load generator: `processes` times `threads` clients, each on its
own keep-alive connection, sending a bounded number of requests back to back.

Processes, not only threads, so that the client side is not held to one core by the
GIL; they start together at an agreed wall-clock instant. Throughput is completed
requests over the span from the first start to the last finish, across processes.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from bench.report import percentile


@dataclass(frozen=True)
class Load:
    host: str
    port: int
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None = None
    # In each body, this field gets a value unique to the request ("{client}-{n}").
    unique_field: str | None = None
    expect_status: int = 200


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    latencies: list[float]
    statuses: dict[int, int]

    @property
    def rate(self) -> float:
        return (self.requests - self.errors) / self.seconds if self.seconds else 0.0

    @property
    def p50(self) -> float:
        return percentile(self.latencies, 50)

    @property
    def p99(self) -> float:
        return percentile(self.latencies, 99)


def merged(parts: list[LoadResult]) -> LoadResult:
    """Several runs of one load as one: requests/s over their summed time."""
    statuses: dict[int, int] = {}
    for part in parts:
        for status, count in part.statuses.items():
            statuses[status] = statuses.get(status, 0) + count
    return LoadResult(
        requests=sum(p.requests for p in parts),
        errors=sum(p.errors for p in parts),
        seconds=sum(p.seconds for p in parts),
        latencies=[latency for p in parts for latency in p.latencies],
        statuses=statuses,
    )


def _client(load: Load, client_id: str, count: int, start_at: float) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    conn = http.client.HTTPConnection(load.host, load.port, timeout=60)
    while time.time() < start_at:
        time.sleep(min(0.01, max(0.0, start_at - time.time())))
    began = time.time()
    for n in range(count):
        body = None
        if load.body is not None:
            fields = dict(load.body)
            if load.unique_field:
                fields[load.unique_field] = f"{fields.get(load.unique_field, 'r')}-{client_id}-{n}"
            body = json.dumps(fields).encode()
        t0 = time.perf_counter()
        status = 0
        for attempt in range(2):
            try:
                conn.request(load.method, load.path, body=body, headers=load.headers)
                response = conn.getresponse()
                response.read()
                status = response.status
                break
            except (ConnectionError, http.client.HTTPException):
                conn.close()  # a kept-alive connection the server closed: reconnect once
                conn = http.client.HTTPConnection(load.host, load.port, timeout=60)
                if attempt:
                    status = -1
        latencies.append(time.perf_counter() - t0)
        statuses[status] = statuses.get(status, 0) + 1
        if status != load.expect_status:
            errors += 1
    ended = time.time()
    conn.close()
    return {
        "latencies": latencies,
        "statuses": statuses,
        "errors": errors,
        "began": began,
        "ended": ended,
    }


def _process(load: Load, process_id: int, threads: int, per_client: list[int],
             start_at: float) -> list[dict[str, Any]]:  # fmt: skip
    results: list[dict[str, Any]] = [{} for _ in range(threads)]

    def run(index: int) -> None:
        results[index] = _client(load, f"{process_id}.{index}", per_client[index], start_at)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return results


def _ready() -> bool:
    return True


class LoadGenerator:
    """Client processes, started once (spawned, so nothing of the parent leaks in)."""

    def __init__(self, processes: int = 2, threads: int = 8) -> None:
        self.processes = processes
        self.threads = threads
        context = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(processes, mp_context=context)
        for future in [self._pool.submit(_ready) for _ in range(processes)]:
            future.result()

    @property
    def clients(self) -> int:
        return self.processes * self.threads

    def run(self, load: Load, total: int) -> LoadResult:
        """Send `total` requests, spread over all clients."""
        counts = [total // self.clients + (i < total % self.clients) for i in range(self.clients)]
        start_at = time.time() + 0.5
        futures = [
            self._pool.submit(
                _process,
                load,
                p,
                self.threads,
                counts[p * self.threads : (p + 1) * self.threads],
                start_at,
            )
            for p in range(self.processes)
        ]
        clients = [client for future in futures for client in future.result()]
        latencies = [lat for c in clients for lat in c["latencies"]]
        statuses: dict[int, int] = {}
        for c in clients:
            for status, n in c["statuses"].items():
                statuses[status] = statuses.get(status, 0) + n
        span = max(c["ended"] for c in clients) - min(c["began"] for c in clients)
        return LoadResult(
            requests=len(latencies),
            errors=sum(c["errors"] for c in clients),
            seconds=span,
            latencies=latencies,
            statuses=statuses,
        )

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
