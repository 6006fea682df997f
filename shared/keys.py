"""API key secrets: only their SHA-256 is stored. The secrets carry 256 random bits,
so a fast hash is enough: there is nothing to brute-force."""

from __future__ import annotations

import hashlib

TENANT_PREFIX = "corral"
OPERATOR_PREFIX = "corralop"
DISPLAY_PREFIX_LENGTH = 12


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def display_prefix(secret: str) -> str:
    return secret[:DISPLAY_PREFIX_LENGTH]
