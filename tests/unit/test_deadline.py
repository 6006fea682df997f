"""A job's deadline in its thread (shared.deadline): what host calls are bounded by."""

from __future__ import annotations

import threading
import time

import pytest

from shared import deadline


def test_outside_a_job_nothing_is_bounded() -> None:
    assert deadline.remaining() is None
    assert deadline.bounded(30.0) == 30.0
    assert deadline.bounded(None) is None
    deadline.check()


def test_a_call_waits_no_longer_than_what_is_left_and_none_starts_past_it() -> None:
    with deadline.running(0.2):
        assert deadline.bounded(30.0) <= 0.2
        assert deadline.bounded(0.05) == 0.05
        left = deadline.bounded(None)
        assert left is not None and 0 < left <= 0.2
        time.sleep(0.25)
        assert deadline.passed()
        with pytest.raises(deadline.JobTimedOut):
            deadline.bounded(30.0)
    assert deadline.remaining() is None  # the block's end takes it away


def test_each_thread_has_its_own_deadline() -> None:
    seen: list[float | None] = []
    with deadline.running(0.01):
        time.sleep(0.02)
        other = threading.Thread(target=lambda: seen.append(deadline.remaining()))
        other.start()
        other.join()
        assert deadline.passed()
    assert seen == [None]
