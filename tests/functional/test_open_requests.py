"""The count of what each API key holds open (infra.open_requests), on the real Redis:
exact under concurrency, per key, and never leaked by a request that is not ended."""

from __future__ import annotations

import threading
import time

import redis as redis_lib

from infra.open_requests import OpenRequest, OpenRequests, open_requests_key
from shared.errors import TooManyRequests


def test_concurrent_begins_never_pass_the_cap(redis_conn: redis_lib.Redis[bytes]) -> None:
    counter = OpenRequests(redis_conn, cap=7)
    admitted: list[OpenRequest] = []
    refused: list[int] = []
    start = threading.Barrier(40)

    def begin() -> None:
        start.wait()
        try:
            admitted.append(counter.begin("key-a", 30))
        except TooManyRequests as exc:
            refused.append(exc.retry_after_seconds)

    threads = [threading.Thread(target=begin) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(admitted) == 7 and len(refused) == 33
    assert all(1 <= seconds <= 30 for seconds in refused)
    assert counter.begin("key-b", 30)  # another key has its own count
    counter.end(admitted[0])
    assert counter.begin("key-a", 30)  # an ended request frees its slot
    try:
        counter.begin("key-a", 30)
    except TooManyRequests:
        pass
    else:
        raise AssertionError("the cap held one request too many")


def test_a_request_never_ended_frees_its_slot_when_its_time_is_over(
    redis_conn: redis_lib.Redis[bytes],
) -> None:
    """As when the API process holding it died."""
    counter = OpenRequests(redis_conn, cap=1, margin_ms=0)
    counter.begin("key-a", 0.2)

    deadline = time.monotonic() + 5
    while True:
        try:
            counter.begin("key-a", 30)
            break
        except TooManyRequests as exc:
            assert exc.retry_after_seconds == 1
            assert time.monotonic() < deadline, "the slot never freed"
            time.sleep(0.05)
    # The key's record goes away with its last request.
    assert 0 < redis_conn.pttl(open_requests_key("key-a")) <= 30_000
