"""Request rate limits per API key: a token bucket in Redis, one Lua script per request.

A key's bucket holds a minute's worth of requests (its plan's `requests_per_minute`, or
the platform default) and refills continuously at that rate; each request takes one
token, and a request that finds none is refused until one has dripped back. The clock
is Redis's own (`TIME`), so every API process shares one bucket per key."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import RedisError

log = logging.getLogger("corral.rate_limits")

PREFIX = "corral:rate:"
BUCKET_SCRIPT = """
local capacity = tonumber(ARGV[1])
local per_ms = capacity / 60000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = capacity
  at = now
end
tokens = math.min(capacity, tokens + math.max(0, now - at) * per_ms)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / per_ms) + 1000)
return {allowed, tostring(tokens)}
"""


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int  # requests a minute (the bucket's size)
    remaining: int
    reset_seconds: int  # until the bucket is full again
    retry_after_seconds: int  # until the next request may pass (0 when this one did)

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
        }


class RateLimiter:
    def __init__(self, redis: Redis[bytes], default_per_minute: int) -> None:
        self._default = default_per_minute
        self._take = redis.register_script(BUCKET_SCRIPT)

    def take(self, key_id: str, per_minute: int | None) -> Verdict | None:
        """Take a token from the key's bucket; None when there is no limit (a limit of 0)
        or Redis does not answer (requests are not refused for want of a counter)."""
        limit = per_minute or self._default
        if limit <= 0:
            return None
        try:
            allowed, raw_tokens = self._take(keys=[PREFIX + key_id], args=[limit])
        except RedisError as exc:
            log.warning("rate limits unavailable; request let through: %s", exc)
            return None
        tokens = float(raw_tokens)
        per_second = limit / 60
        return Verdict(
            allowed=bool(allowed),
            limit=limit,
            remaining=int(tokens),
            reset_seconds=math.ceil((limit - tokens) / per_second),
            retry_after_seconds=0 if allowed else max(1, math.ceil((1 - tokens) / per_second)),
        )
