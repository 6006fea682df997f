"""7. No tenant can stall the API: GET /health and GET /cluster while 1,000 waits
(GET /operations/:id/wait) are parked, 100 on each of 10 API keys, against the same
calls on the idle server.

Both servers run gunicorn.conf.py with its process count: "after" as it ships (the
asgi worker class, handlers.asgi), "before" with the thread-per-request path this
replaced (`--worker-class gthread --threads 16`, handlers.app), in the same run.
No rq worker runs, so the operation waited on stays queued and every wait parks; a
wait that ends is sent again at once, so that 1,000 stay parked while the probes
run. Probes are sequential, on one keep-alive connection each.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field

from bench.report import TIMES, Row, Section, ms, percentile, ratio, table
from bench.stack import Stack
from bench.world import ADMIN, PUBLIC, HttpApi, expect, seed
from infra.open_requests import open_requests_key
from infra.table.repository import Repository
from shared.keys import hash_secret

TITLE = "7. Parked waits: /health and /cluster with 1,000 waits parked (gunicorn, loopback)"
KEYS, WAITS_PER_KEY = 10, 100
WAIT_SECONDS = 120  # longer than the measurement: the waits stay parked
PROBE_TIMEOUT = 10.0
# Once every wait is counted, the last of them still read the table once: let that end.
SETTLE_SECONDS = 3.0
SIDES = {
    "after (asgi)": ("handlers.asgi:get_app()", ""),
    "before (gthread)": ("handlers.app:get_app()", "--worker-class gthread --threads 16"),
}


@dataclass
class Probe:
    latencies: list[float] = field(default_factory=list)
    failures: int = 0

    @property
    def p50(self) -> float:
        return percentile(self.latencies, 50)

    @property
    def p99(self) -> float:
        return percentile(self.latencies, 99)


def _probe(url: str, path: str, key: str | None, count: int, budget: float) -> Probe:
    """`count` sequential GETs (fewer if `budget` seconds run out); a call that fails or
    takes over PROBE_TIMEOUT counts as PROBE_TIMEOUT and as a failure."""
    parsed = urllib.parse.urlsplit(url)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    result = Probe()
    conn: http.client.HTTPConnection | None = None
    stop = time.monotonic() + budget
    for _ in range(count):
        if time.monotonic() > stop:
            break
        started = time.perf_counter()
        try:
            if conn is None:
                conn = http.client.HTTPConnection(
                    parsed.hostname or "127.0.0.1", parsed.port or 80, timeout=PROBE_TIMEOUT
                )
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            ok = response.status == 200
        except (OSError, http.client.HTTPException):
            ok = False
            if conn is not None:
                conn.close()
            conn = None
        elapsed = time.perf_counter() - started
        result.latencies.append(elapsed if ok else max(elapsed, PROBE_TIMEOUT))
        result.failures += not ok
    if conn is not None:
        conn.close()
    return result


class ParkedWaits:
    """`len(keys) * per_key` waits kept open from one asyncio thread."""

    def __init__(self, url: str, path: str, keys: list[str], per_key: int) -> None:
        parsed = urllib.parse.urlsplit(url)
        self._host, self._port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self._path, self._keys, self._per_key = path, keys, per_key
        self._loop = asyncio.new_event_loop()
        self._stopping: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ParkedWaits:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        self._stopping = asyncio.Event()
        tasks = [
            asyncio.create_task(self._keep_one(key)) for key in self._keys
            for _ in range(self._per_key)
        ]  # fmt: skip
        await self._stopping.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _keep_one(self, key: str) -> None:
        request = (
            f"GET {self._path} HTTP/1.1\r\nHost: bench\r\n"
            f"Authorization: Bearer {key}\r\nConnection: close\r\n\r\n"
        ).encode()
        while True:
            writer = None
            try:
                reader, writer = await asyncio.open_connection(self._host, self._port)
                writer.write(request)
                await writer.drain()
                await reader.read()  # until the server answers and closes
            except OSError:
                await asyncio.sleep(0.5)
            finally:
                if writer is not None:
                    writer.close()


def _key_id(repo: Repository, secret: str) -> str:
    key = repo.keys.find(hash_secret(secret))
    assert key is not None, "a key the benchmark minted is missing"
    return key.id


@contextlib.contextmanager
def _served(stack: Stack, app: str, args: str, env: dict[str, str]) -> Iterator[str]:
    side_env = env | ({"GUNICORN_CMD_ARGS": args} if args else {})
    with stack.gunicorn(app, side_env) as served:
        yield served.url


def run(stack: Stack, quick: bool) -> Section:
    probes = 30 if quick else 100
    section = Section(
        TITLE,
        "the same calls on the same server with nothing parked (sequential, one "
        "keep-alive connection per path).",
    )
    settings = stack.settings("waits")
    env = stack.corral_env(settings) | {
        "CORRAL_WAIT_CAP_SECONDS": str(WAIT_SECONDS),
        "CORRAL_MAX_OPEN_PER_KEY": str(WAITS_PER_KEY),
    }
    rows: list[list[str]] = []
    figures: dict[tuple[str, str], tuple[Probe, Probe]] = {}
    redis = stack.redis()
    try:
        with stack.table(settings) as repo:
            keys: list[str] = []
            op_id = ""
            for side, (app, args) in SIDES.items():
                with _served(stack, app, args, env) as url:
                    if not keys:
                        api = HttpApi(url)
                        world = seed(api, repo, stack.docker_url)
                        _, op_id = world.create("parked")
                        keys = [world.tenant_key] + [
                            expect(api, "POST", f"{ADMIN}/clusters/{world.cluster_id}/keys",
                                   world.operator_key, {"name": f"k{n}"}, 201)["secret"]
                            for n in range(KEYS - 1)
                        ]  # fmt: skip
                        api.close()
                    paths = {"GET /health": ("/health", None),
                             "GET /cluster": (f"{PUBLIC}/cluster", keys[0])}  # fmt: skip
                    for p, k in paths.values():  # unmeasured: connections, auth cache
                        _probe(url, p, k, 5, 30)
                    idle = {name: _probe(url, p, k, probes, 120) for name, (p, k) in paths.items()}
                    counted = [open_requests_key(_key_id(repo, k)) for k in keys]
                    wait_path = f"{PUBLIC}/operations/{op_id}/wait?timeout={WAIT_SECONDS}"
                    with ParkedWaits(url, wait_path, keys, WAITS_PER_KEY):
                        deadline = time.monotonic() + 60
                        parked = 0
                        while time.monotonic() < deadline:
                            parked = sum(int(redis.zcard(c)) for c in counted)
                            if parked >= KEYS * WAITS_PER_KEY:
                                break
                            time.sleep(0.5)
                        time.sleep(SETTLE_SECONDS)
                        loaded = {
                            name: _probe(url, p, k, probes, 90) for name, (p, k) in paths.items()
                        }
                    for name in paths:
                        figures[(side, name)] = (loaded[name], idle[name])
                        rows.append([
                            side, name, str(parked), ms(idle[name].p99), ms(loaded[name].p50),
                            ms(loaded[name].p99), ratio(loaded[name].p99, idle[name].p99),
                            f"{loaded[name].failures} of {len(loaded[name].latencies)}",
                        ])  # fmt: skip
    finally:
        redis.close()
        stack.flush_redis()
    for name in ("GET /health", "GET /cluster"):
        after, after_idle = figures[("after (asgi)", name)]
        before, before_idle = figures[("before (gthread)", name)]
        section.rows += [
            Row(f"{name}: p99, 1,000 waits parked", ms(after.p99), ms(after_idle.p99),
                ratio(after.p99, after_idle.p99)),
            Row(f"{name}: p99, 1,000 waits parked, before (gthread)", ms(before.p99),
                ms(before_idle.p99), ratio(before.p99, before_idle.p99)),
        ]  # fmt: skip
    section.details = table(
        ["server", "call", "waits parked (counted)", "idle p99", "parked p50", "parked p99",
         "parked / idle p99", "failed or > 10 s"],
        rows,
    )  # fmt: skip
    section.notes = [
        f"{KEYS} API keys {TIMES} {WAITS_PER_KEY} waits, each on its own connection from one "
        "asyncio client thread; `waits parked (counted)` is what the servers' per-key count "
        "(infra.open_requests) held when the probes began. gthread serves at most processes "
        f"{TIMES} 16 requests at once: the rest of the waits queue for a thread, and so do the "
        "probes.",
        f"A probe that failed or took over {PROBE_TIMEOUT:.0f} s counts as {PROBE_TIMEOUT:.0f} s; "
        "the before side stops probing after 90 s.",
    ]
    return section
