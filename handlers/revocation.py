"""Ending a revoked key's waits and follows on the WSGI app (the Lambda entry, a
threaded WSGI server), as handlers.waits does on the ASGI app: a thread holding a
wait or a follow pauses on a Redis subscription to the key's revocation channel
(infra.queue.announce_revoked publishes on it), so the revocation wakes it at once,
instead of sleeping blindly until its next poll.

When Redis cannot subscribe, a pause is a plain sleep: the stream then ends at its
cap, and no new request of the key gets through either way."""

from __future__ import annotations

import contextlib
import time
from types import TracebackType

from redis import Redis
from redis.client import PubSub
from redis.exceptions import RedisError

from infra.queue import revoked_channel


class Watch:
    """Pauses that end early on a message on the key's revocation channel, or on any
    of `also` (e.g. an operation's channel). Use as a context manager."""

    def __init__(self, redis: Redis[bytes], key_id: str, *also: str) -> None:
        self._revoked = revoked_channel(key_id)
        self._channels = (self._revoked, *also)
        self._redis = redis
        self._pubsub: PubSub | None = None
        self.revoked = False

    def __enter__(self) -> Watch:
        try:
            self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            self._pubsub.subscribe(*self._channels)
        except RedisError:
            self._pubsub = None
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._pubsub is not None:
            with contextlib.suppress(RedisError):
                self._pubsub.close()

    @property
    def subscribed(self) -> bool:
        return self._pubsub is not None

    def pause(self, seconds: float) -> bool:
        """Wait up to `seconds`; True when woken by a message (`revoked` says whether
        it was the revocation)."""
        if self._pubsub is None:
            time.sleep(seconds)
            return False
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = self._pubsub.get_message(timeout=left)
            except RedisError:
                self._pubsub = None
                time.sleep(max(deadline - time.monotonic(), 0))
                return False
            if message is None:
                continue  # a subscribe confirmation, or the timeout
            channel = message["channel"]
            name = channel.decode() if isinstance(channel, bytes) else str(channel)
            self.revoked = self.revoked or name == self._revoked
            return True
        return False
