"""The running job's deadline, for the thread that runs it.

A worker runs several jobs at once, one per thread (workers.worker), so a job past its
timeout cannot be stopped by a signal (Python runs signal handlers in the main thread
only). Instead every host call checks the deadline of the job it runs for, and waits
no longer than what is left of it: the docker client's requests and the SSH commands
are bounded by it, and one past it raises `JobTimedOut`. A call stuck where no timeout
reaches it is the worker's watchdog's (it exits the process past timeout + grace).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import overload


class JobTimedOut(BaseException):
    """Raised inside a job that ran past its timeout. A BaseException, like
    KeyboardInterrupt, so that no library's `except Exception` turns it into something
    else (the docker SDK wraps any error of its version probe in a DockerException,
    which the driver reports as a host error)."""


_local = threading.local()


@contextlib.contextmanager
def running(timeout: float | None) -> Iterator[None]:
    """Run the block as a job that may take `timeout` seconds (None: no limit)."""
    previous = getattr(_local, "at", None)
    _local.at = None if timeout is None else time.monotonic() + timeout
    _local.timeout = timeout
    try:
        yield
    finally:
        _local.at = previous


def remaining() -> float | None:
    """Seconds left to this thread's job; None when it has no deadline."""
    at: float | None = getattr(_local, "at", None)
    return None if at is None else at - time.monotonic()


def passed() -> bool:
    left = remaining()
    return left is not None and left <= 0


def check() -> None:
    """Raise `JobTimedOut` if this thread's job is past its deadline."""
    if passed():
        raise JobTimedOut(f"the job ran past its timeout ({getattr(_local, 'timeout', 0)} s)")


@overload
def bounded(timeout: float) -> float: ...
@overload
def bounded(timeout: None) -> float | None: ...


def bounded(timeout: float | None) -> float | None:
    """`timeout` (None: none) shortened to what is left of the job; checks first."""
    check()
    left = remaining()
    if left is None:
        return timeout
    return left if timeout is None else min(timeout, left)
