"""API key secrets: only their SHA-256 is stored. The secrets carry 256 random bits,
so a fast hash is enough: there is nothing to brute-force."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

TENANT_PREFIX = "corral"
OPERATOR_PREFIX = "corralop"
DISPLAY_PREFIX_LENGTH = 12


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def display_prefix(secret: str) -> str:
    return secret[:DISPLAY_PREFIX_LENGTH]


# What a key may do, by the kind of route (handlers/auth.py maps each route to one).
READ, WRITE, POWER, DELETE = "read", "write", "power", "delete"
VERBS = (READ, WRITE, POWER, DELETE)


@dataclass(frozen=True)
class KeyScope:
    """What a key is narrowed to: verbs, and optionally some containers and eggs (None:
    any), until an optional expiry. The default scope is everything, for ever."""

    verbs: tuple[str, ...] = VERBS
    container_ids: tuple[str, ...] | None = None
    egg_ids: tuple[str, ...] | None = None
    expires_at: datetime | None = None

    def allows_verb(self, verb: str) -> bool:
        return verb in self.verbs

    def allows_container(self, container_id: str) -> bool:
        return self.container_ids is None or container_id in self.container_ids

    def allows_egg(self, egg_id: str) -> bool:
        return self.egg_ids is None or egg_id in self.egg_ids

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def broader_than(self, other: KeyScope) -> list[str]:
        """What this scope allows that `other` does not (empty: it is within `other`)."""
        wider = [f"verb {v}" for v in self.verbs if v not in other.verbs]
        for what, mine, theirs in (
            ("containers", self.container_ids, other.container_ids),
            ("eggs", self.egg_ids, other.egg_ids),
        ):
            if theirs is not None and (mine is None or not set(mine) <= set(theirs)):
                wider.append(what)
        if other.expires_at is not None and (
            self.expires_at is None or self.expires_at > other.expires_at
        ):
            wider.append("expiry")
        return wider
