"""Short-lived bearer tokens (004's `POST /api/auth/login`): a key exchanged for a
signed token that stands in for it until it expires.

A token is `corraltok.<payload>.<signature>`: the payload is base64url JSON naming the
key (its id and hash) and the expiry, the signature an HMAC-SHA256 of the payload with
the platform's token secret. It carries no scope of its own: whoever presents it is
authenticated *as the key*, looked up again on every use, so revoking the key (or
suspending its cluster) refuses its tokens at once. The key's hash is no secret from
the token's holder, who held the key itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass

from shared.errors import Unauthorized

PREFIX = "corraltok"
# Key secrets are `<prefix>_<urlsafe base64>` (no dots): the shapes cannot be confused.
SEPARATOR = "."
MAX_TOKEN_LENGTH = 1024


@dataclass(frozen=True)
class TokenClaims:
    key_id: str
    key_hash: str
    issued_at: int  # unix seconds
    expires_at: int


def looks_like_token(credential: str) -> bool:
    return credential.startswith(PREFIX + SEPARATOR)


def sign(claims: TokenClaims, secret: str) -> str:
    payload = _b64(
        json.dumps(
            {
                "kid": claims.key_id,
                "kh": claims.key_hash,
                "iat": claims.issued_at,
                "exp": claims.expires_at,
            },
            separators=(",", ":"),
        ).encode()
    )
    return SEPARATOR.join((PREFIX, payload, _b64(_mac(payload, secret))))


def verify(token: str, secret: str, now: int) -> TokenClaims:
    """The token's claims when its signature holds and it has not expired; Unauthorized
    (one answer for every way it can fail) otherwise."""
    parts = token.split(SEPARATOR)
    if len(token) > MAX_TOKEN_LENGTH or len(parts) != 3 or parts[0] != PREFIX:
        raise Unauthorized()
    _, payload, signature = parts
    try:
        given = _unb64(signature)
    except (binascii.Error, ValueError):
        raise Unauthorized() from None
    if not hmac.compare_digest(given, _mac(payload, secret)):
        raise Unauthorized()
    try:
        data = json.loads(_unb64(payload))
        claims = TokenClaims(
            key_id=str(data["kid"]),
            key_hash=str(data["kh"]),
            issued_at=int(data["iat"]),
            expires_at=int(data["exp"]),
        )
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise Unauthorized() from None
    if claims.expires_at <= now:
        raise Unauthorized("The token has expired; log in again.")
    return claims


def _mac(payload: str, secret: str) -> bytes:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
