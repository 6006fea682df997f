"""Event numbers handed out by Redis, from blocks that the table's counter reserves.

Every change reserves the numbers of its events before its transaction
(infra.table.events). Reserved on the table alone, that is a write of its own in every
change, all of a cluster's changes on one counter item: on the create's path, a round
trip and a hot item as costly as the rest of its reads. Here one Lua call to Redis
(`take`) hands them out instead, in order, from a block of `BLOCK` numbers that the
table's counter (`SEQUENCE_SK`) reserves at a time: the counter is from now on the
end of the last block reserved, never behind a number handed out. The log's readers
and their rules for missing numbers are unchanged.

- A block runs out: the one caller that takes the refill lock ADDs a block to the
  table's counter and extends the block (the new one follows on: no number skipped);
  the others wait for it, a few milliseconds, and take again.
- Redis loses the block (restarted without persistence, evicted, failed over): the
  next take finds none, and the refill reserves a block after every number the
  table's counter ever reserved. The numbers left in the lost block are never handed
  out: holes that readers void after the grace, at most `BLOCK` once per loss.
- Redis does not answer, or the refill lock outlives `REFILL_WAIT_S` (its holder
  died): the numbers are reserved on the table's counter itself, as without Redis.
  A block reserved before may then hand out numbers behind those: a reader that
  voids one makes its commit find it taken, and the commit `discard`s the block
  (which the table's counter has passed) before it reserves again, so the next
  block starts after everything.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING

from redis import Redis
from redis.exceptions import RedisError

from infra.table.events import TableNumbers

if TYPE_CHECKING:
    from infra.table.dynamo import Dynamo

# Numbers the table's counter reserves for Redis at a time: one table write per this
# many events of a log, and the most a lost block leaves missing.
BLOCK = 100
# How long a refill may hold its lock (its holder died past it) and how long another
# caller waits for it before reserving on the table's counter itself.
REFILL_LOCK_MS = 2000
REFILL_WAIT_S = 3.0
REFILL_POLL_S = 0.002

# KEYS[1]: the log's block {next, last}; ARGV[1]: how many numbers. The last of them,
# or -1 when the block cannot hand out that many.
TAKE_LUA = """
local wanted = tonumber(ARGV[1])
local block = redis.call('HMGET', KEYS[1], 'next', 'last')
local next_number, last = tonumber(block[1]), tonumber(block[2])
if next_number == nil or last == nil or next_number + wanted - 1 > last then
  return -1
end
redis.call('HSET', KEYS[1], 'next', next_number + wanted)
return next_number + wanted - 1
"""

# KEYS[1]: the log's block; ARGV: the first and last numbers the table reserved. A
# block that follows on extends the one there; any other replaces it (the numbers
# left in it are skipped); one behind what is there already changes nothing.
EXTEND_LUA = """
local first, new_last = tonumber(ARGV[1]), tonumber(ARGV[2])
local last = tonumber(redis.call('HGET', KEYS[1], 'last'))
if last ~= nil and new_last <= last then
  return 0
end
if last ~= nil and first == last + 1 then
  redis.call('HSET', KEYS[1], 'last', new_last)
else
  redis.call('HSET', KEYS[1], 'next', first, 'last', new_last)
end
return 1
"""


# KEYS[1]: the log's block; ARGV[1]: the last number the table's counter reserved.
# Drops the block when it ends before that number.
FORGET_BEHIND_LUA = """
local last = tonumber(redis.call('HGET', KEYS[1], 'last'))
if last ~= nil and last < tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""


class RedisNumbers:
    """Where `EventLog` takes its numbers when Redis is at hand (services.deps wires
    it); thread-safe."""

    def __init__(self, redis: Redis[bytes], db: Dynamo) -> None:
        self._redis = redis
        self._table = TableNumbers(db)
        self._prefix = f"corral:{db.table}:event-numbers:"
        self._take = redis.register_script(TAKE_LUA)
        self._extend = redis.register_script(EXTEND_LUA)
        self._forget_behind = redis.register_script(FORGET_BEHIND_LUA)

    def take(self, log_name: str, count: int) -> int:
        """Reserve `count` numbers of the log, after every one reserved before; the
        last of them."""
        with contextlib.suppress(RedisError):
            taken = self._from_block(self._prefix + log_name, log_name, count)
            if taken is not None:
                return taken
        return self._table.take(log_name, count)

    def _from_block(self, block: str, log_name: str, count: int) -> int | None:
        """The last of `count` numbers from the log's block (refilled as needed); None
        when a refill by another caller takes longer than `REFILL_WAIT_S`."""
        deadline = time.monotonic() + REFILL_WAIT_S
        while True:
            last = self._taken(block, count)
            if last is not None:
                return last
            if self._redis.set(block + ":refill", 1, nx=True, px=REFILL_LOCK_MS):
                try:
                    # another caller's refill may have landed since the take above
                    last = self._taken(block, count)
                    if last is not None:
                        return last
                    self._refill(block, log_name, count)
                finally:
                    self._redis.delete(block + ":refill")
            elif time.monotonic() > deadline:
                return None
            else:
                time.sleep(REFILL_POLL_S)

    def _taken(self, block: str, count: int) -> int | None:
        """The last of `count` numbers the block hands out; None when it has not that many."""
        last = int(self._take(keys=[block], args=[count]))
        return last if last >= 0 else None

    def _refill(self, block: str, log_name: str, count: int) -> None:
        size = max(BLOCK, count)
        last = self._table.take(log_name, size)
        self._extend(keys=[block], args=[last - size + 1, last])

    def discard(self, log_name: str) -> None:
        """A reader voided a number of the log's block: forget the block when the
        table's counter has reserved numbers after it (on the table itself, while Redis
        did not answer), so that the next take starts a new block after them. A block
        that is still the last reserved is ahead of every number: it is kept (a commit
        late past the grace leaves one void, not the rest of its block)."""
        reserved = self._table.last(log_name)
        with contextlib.suppress(RedisError):
            self._forget_behind(keys=[self._prefix + log_name], args=[reserved])
