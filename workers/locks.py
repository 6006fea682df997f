"""One job at a time per workload, across every worker process and machine.

A workload has one pending operation, but two jobs may still meet on it: the
reconciler requeues a job whose worker it believes dead while that worker still runs
it, or a delete supersedes an operation whose job has begun. A worker runs several
jobs at once (workers.worker), so the job holds the workload's lock in Redis while it
touches the workload; a second job for it waits until the first is done.

The lock is `SET NX` with a short expiry that a thread of the holding process renews
while the job runs: a worker that dies (SIGKILL, OOM, its machine gone) frees it
within `TTL_S`. A holder on this machine whose process is gone is taken over at once,
so a job requeued right after its worker was killed does not wait out the expiry.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator

from redis import Redis

from shared import deadline

TTL_S = 30.0
RENEW_EVERY_S = TTL_S / 3
POLL_S = 0.05

log = logging.getLogger("corral.locks")

_HOST = socket.gethostname()

# Compare-and-set scripts: only the holder's token renews or releases the lock.
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"  # noqa: E501
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"  # noqa: E501
_TAKE_OVER = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3]) else return nil end"  # noqa: E501


def lock_key(workload_id: str) -> str:
    return f"corral:workload-job:{workload_id}"


class Held:
    """The locks this process holds, renewed by one daemon thread while any is held."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._held: dict[str, tuple[Redis[bytes], str]] = {}  # key -> (redis, token)
        self._renewer: threading.Thread | None = None

    def add(self, redis: Redis[bytes], key: str, token: str) -> None:
        with self._guard:
            self._held[key] = (redis, token)
            if self._renewer is None or not self._renewer.is_alive():
                self._renewer = threading.Thread(
                    target=self._renew_forever, name="corral-lock-renewer", daemon=True
                )
                self._renewer.start()

    def discard(self, key: str) -> None:
        with self._guard:
            self._held.pop(key, None)

    def _renew_forever(self) -> None:
        while True:
            time.sleep(RENEW_EVERY_S)
            with self._guard:
                held = list(self._held.items())
            for key, (redis, token) in held:
                try:
                    if not redis.register_script(_RENEW)(
                        keys=[key], args=[token, int(TTL_S * 1000)]
                    ):
                        log.error("the lock %s expired while its job ran", key)
                except Exception:  # Redis away for a moment: the next round tries again
                    log.warning("could not renew the lock %s", key, exc_info=True)


_held = Held()


@contextlib.contextmanager
def workload_job(redis: Redis[bytes], workload_id: str, job_id: str) -> Iterator[bool]:
    """Hold workload `workload_id`'s lock for the block, waiting while another job
    holds it (no longer than the job's deadline allows). Yields whether it had to wait:
    what the other job did is then in the table, to be read again."""
    key = lock_key(workload_id)
    token = f"{_HOST}:{os.getpid()}:{job_id}:{uuid.uuid4().hex[:8]}"
    waited = False
    while not redis.set(key, token, nx=True, px=int(TTL_S * 1000)):
        if _take_over_dead_holder(redis, key, token):
            break
        if not waited:
            log.info("job %s waits for workload %s's running job", job_id, workload_id)
        waited = True
        deadline.check()
        time.sleep(POLL_S)
    _held.add(redis, key, token)
    try:
        yield waited
    finally:
        _held.discard(key)
        try:
            redis.register_script(_RELEASE)(keys=[key], args=[token])
        except Exception:  # it expires by itself
            log.warning("could not release the lock %s", key, exc_info=True)


def _take_over_dead_holder(redis: Redis[bytes], key: str, token: str) -> bool:
    """Take the lock from a holder on this machine whose process is gone."""
    holder = redis.get(key)
    if holder is None:
        return False
    host, _, rest = holder.decode(errors="replace").partition(":")
    pid = rest.partition(":")[0]
    if host != _HOST or not pid.isdigit() or _alive(int(pid)):
        return False
    taken = redis.register_script(_TAKE_OVER)(keys=[key], args=[holder, token, int(TTL_S * 1000)])
    if taken:
        log.warning("took the lock %s over from process %s, gone", key, pid)
    return bool(taken)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
