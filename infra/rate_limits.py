"""Request rate limits: a token bucket per API key and one per cluster, in Redis, both
taken by one Lua script (one round trip a request).

A bucket holds a minute's worth of requests and refills continuously at that rate.
A key's size is its plan's `requests_per_minute` (or the platform default); its
cluster's, shared by all the cluster's keys (a tenant may mint ten), is the plan's
`cluster_requests_per_minute` (or its default). A request takes one token from each
bucket it has, and only when every one of them has a token: one that finds either
empty is refused, taking nothing, until a token has dripped back. The clock is
Redis's own (`TIME`), so every API process shares the buckets.

The same round trip can confirm a value the request relies on (`take_holding`):
authentication's cached principal, so that a request whose key this process already
knows makes one round trip to Redis in all."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import RedisError

log = logging.getLogger("corral.rate_limits")

PREFIX = "corral:rate:"
CLUSTER_PREFIX = "corral:rate:cluster:"
# take(first): KEYS[first..] are the buckets (a key's, then its cluster's when it has
# one), ARGV[first..] their sizes. Answers allowed (1/0), then each bucket's tokens left.
TAKE_LUA = """
local function take(first)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local tokens = {}
  local allowed = 1
  for i = first, #KEYS do
    local capacity = tonumber(ARGV[i])
    local state = redis.call('HMGET', KEYS[i], 'tokens', 'at')
    local held = tonumber(state[1])
    local at = tonumber(state[2])
    if held == nil or at == nil then
      held = capacity
      at = now
    end
    tokens[i] = math.min(capacity, held + math.max(0, now - at) * capacity / 60000)
    if tokens[i] < 1 then
      allowed = 0
    end
  end
  local answer = {allowed}
  for i = first, #KEYS do
    local capacity = tonumber(ARGV[i])
    tokens[i] = tokens[i] - allowed
    redis.call('HSET', KEYS[i], 'tokens', tostring(tokens[i]), 'at', tostring(now))
    redis.call('PEXPIRE', KEYS[i], math.ceil((capacity - tokens[i]) * 60000 / capacity) + 1000)
    answer[#answer + 1] = tostring(tokens[i])
  end
  return answer
end
"""
BUCKET_SCRIPT = TAKE_LUA + "return take(1)"
# KEYS[1] must still hold ARGV[1] (else nil, and nothing is taken); then KEYS[2] is set
# (NX, ARGV[2] seconds) and the buckets from KEYS[3] are taken. Answers whether KEYS[2]
# was set, then take's answer.
HOLDING_SCRIPT = (
    TAKE_LUA
    + """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return false
end
local marked = redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) and 1 or 0
local answer = take(3)
table.insert(answer, 1, marked)
return answer
"""
)


@dataclass(frozen=True)
class Held:
    """A value in Redis that a request relies on (authentication's cached principal),
    confirmed in the round trip that takes the request's tokens: they are taken only
    while `key` still holds `value`, and then `mark` is set (NX, for `mark_seconds`)."""

    key: str
    value: bytes
    mark: str
    mark_seconds: int


@dataclass(frozen=True)
class Taken:
    """What RateLimiter.take_holding answers while the held value stands."""

    verdict: Verdict | None
    marked: bool  # whether `mark` was set by this request (it was absent)


@dataclass(frozen=True)
class Verdict:
    """What one bucket (the tighter one when a request has two) says of a request."""

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


def _verdict(allowed: bool, limit: int, tokens: float) -> Verdict:
    per_second = limit / 60
    return Verdict(
        allowed=allowed,
        limit=limit,
        remaining=int(tokens),
        reset_seconds=math.ceil((limit - tokens) / per_second),
        retry_after_seconds=0 if allowed else max(0, math.ceil((1 - tokens) / per_second)),
    )


def tighter(verdicts: list[Verdict]) -> Verdict:
    """The bucket a client must heed: one that refused (an empty bucket waits at least
    a second), else the one with the fewest requests left (then the smaller)."""
    return min(verdicts, key=lambda v: (-v.retry_after_seconds, v.remaining, v.limit))


class RateLimiter:
    def __init__(
        self, redis: Redis[bytes], default_per_minute: int, cluster_default_per_minute: int
    ) -> None:
        self._default = default_per_minute
        self._cluster_default = cluster_default_per_minute
        self._take = redis.register_script(BUCKET_SCRIPT)
        self._take_holding = redis.register_script(HOLDING_SCRIPT)

    def take(
        self,
        key_id: str,
        per_minute: int | None,
        cluster_id: str | None = None,
        cluster_per_minute: int | None = None,
    ) -> Verdict | None:
        """Take a token from the key's bucket and its cluster's (an operator key has
        none); None when neither has a limit (a limit of 0) or Redis does not answer
        (requests are not refused for want of a counter)."""
        buckets = self._buckets(key_id, per_minute, cluster_id, cluster_per_minute)
        if not buckets:
            return None
        try:
            answer = self._take(
                keys=[name for name, _ in buckets], args=[limit for _, limit in buckets]
            )
        except RedisError as exc:
            log.warning("rate limits unavailable; request let through: %s", exc)
            return None
        return _verdict_of(buckets, answer)

    def take_holding(
        self,
        held: Held,
        key_id: str,
        per_minute: int | None,
        cluster_id: str | None = None,
        cluster_per_minute: int | None = None,
    ) -> Taken | None:
        """`take`, in the same round trip as confirming `held`; None (nothing taken)
        when its key no longer holds its value, or Redis does not answer: the caller
        reads the value afresh, then calls `take`."""
        buckets = self._buckets(key_id, per_minute, cluster_id, cluster_per_minute)
        try:
            answer = self._take_holding(
                keys=[held.key, held.mark, *(name for name, _ in buckets)],
                args=[held.value, held.mark_seconds, *(limit for _, limit in buckets)],
            )
        except RedisError:
            return None
        if answer is None:
            return None
        marked, *taken = answer
        return Taken(_verdict_of(buckets, taken) if buckets else None, bool(marked))

    def _buckets(
        self,
        key_id: str,
        per_minute: int | None,
        cluster_id: str | None,
        cluster_per_minute: int | None,
    ) -> list[tuple[str, int]]:
        """The buckets a request takes from, by name, with their sizes (none of 0)."""
        buckets = [(PREFIX + key_id, per_minute or self._default)]
        if cluster_id is not None:
            cluster_limit = cluster_per_minute or self._cluster_default
            buckets.append((CLUSTER_PREFIX + cluster_id, cluster_limit))
        return [(name, limit) for name, limit in buckets if limit > 0]


def _verdict_of(buckets: list[tuple[str, int]], answer: list[bytes | int]) -> Verdict:
    allowed, *raw_tokens = answer
    return tighter(
        [
            _verdict(bool(allowed), limit, float(raw))
            for (_, limit), raw in zip(buckets, raw_tokens, strict=True)
        ]
    )
