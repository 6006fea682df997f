"""Secrets Corral must give back to a host later (an egg's registry password) are
stored sealed: Fernet (AES-128-CBC with an HMAC-SHA256) under the key in the setting
CORRAL_SECRET_KEY. Only workers open them, for the moment they use them.

`cryptography` is imported on first use, not with this module: the API's cold path
only seals when an operator sends a secret."""

from __future__ import annotations

import base64
import binascii

KEY_BYTES = 32


class SealingError(Exception):
    """A key that is not one, or a sealed value this key cannot open."""


def check_key(key: str) -> str:
    """`key` if it is a Fernet key (32 bytes, url-safe base64), else SealingError."""
    try:
        raw = base64.urlsafe_b64decode(key.encode())
    except (binascii.Error, ValueError) as exc:
        raise SealingError("CORRAL_SECRET_KEY is not url-safe base64") from exc
    if len(raw) != KEY_BYTES:
        raise SealingError(
            f"CORRAL_SECRET_KEY must hold {KEY_BYTES} bytes in url-safe base64 (it holds "
            f"{len(raw)}); make one with: python3 -c 'import base64, os; "
            "print(base64.urlsafe_b64encode(os.urandom(32)).decode())'"
        )
    return key


def new_key() -> str:
    """A fresh key (make run and the tests make their own)."""
    import os

    return base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode()


def seal(key: str, secret: str) -> str:
    from cryptography.fernet import Fernet

    return Fernet(check_key(key).encode()).encrypt(secret.encode()).decode()


def unseal(key: str, sealed: str) -> str:
    from cryptography.fernet import Fernet, InvalidToken

    try:
        return Fernet(check_key(key).encode()).decrypt(sealed.encode()).decode()
    except InvalidToken as exc:
        raise SealingError("the sealed value does not open with CORRAL_SECRET_KEY") from exc
