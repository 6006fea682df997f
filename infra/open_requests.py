"""What each API key holds open: its waits (GET /operations/:id/wait), log follows
(logs?follow=1) and event follows (events?follow=1), counted in Redis so that every
API process sees one count.

Each open request is a member of its key's sorted set, scored with the moment (on
Redis's clock) it ends at the latest: a wait or a follow is capped in time. A request
that ends removes its member; one whose process died, or whose end was missed, stays
counted only until that moment plus a margin, when the next `begin` of the same key
sweeps it out. Checking the count and adding to it is one Lua script, so two
processes can never both take the last slot."""

from __future__ import annotations

import contextlib
import math
import uuid
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from shared.errors import ServiceUnavailable, TooManyRequests

# A request counts this long past its own cap before a sweep may drop it: the time a
# process may take to notice its cap and end it.
LEASE_MARGIN_MS = 10_000

# KEYS[1] the key's set; ARGV: the cap, the request's longest duration (ms), its id.
# Returns {1, 0} when the request was added, {0, ms until the first one ends} when not.
_BEGIN = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[4]))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  if first[2] == nil then
    return {0, tonumber(ARGV[2])}
  end
  return {0, tonumber(first[2]) - now}
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], tonumber(last[2]) + tonumber(ARGV[4]))
return {1, 0}
"""


def open_requests_key(key_id: str) -> str:
    return f"corral:open:{key_id}"


@dataclass(frozen=True)
class OpenRequest:
    redis_key: str
    member: str


class OpenRequests:
    """At most `cap` open requests per API key."""

    def __init__(self, redis: Any, cap: int, margin_ms: int = LEASE_MARGIN_MS) -> None:
        self._redis = redis
        self._cap = cap
        self._margin_ms = margin_ms
        self._begin = redis.register_script(_BEGIN)

    def begin(self, key_id: str, seconds: float) -> OpenRequest:
        """Count a request of `key_id` that lasts `seconds` at most. Raises
        TooManyRequests (with the seconds until a slot frees at the latest) when the key
        holds `cap` already, ServiceUnavailable when Redis does not answer: an
        uncounted wait is what could stall the API, so none parks uncounted."""
        request = OpenRequest(open_requests_key(key_id), uuid.uuid4().hex)
        try:
            added, wait_ms = self._begin(
                keys=[request.redis_key],
                args=[self._cap, math.ceil(seconds * 1000), request.member, self._margin_ms],
            )
        except RedisError as exc:
            raise ServiceUnavailable("The queue did not answer.") from exc
        if not added:
            raise TooManyRequests(
                max(1, math.ceil(int(wait_ms) / 1000)),
                f"This API key holds {self._cap} waits and follows open, the most it "
                "may; retry when one ends.",
            )
        return request

    def end(self, request: OpenRequest) -> None:
        """Free the slot. If Redis does not answer, the slot frees when its time ends."""
        with contextlib.suppress(RedisError):
            self._redis.zrem(request.redis_key, request.member)
