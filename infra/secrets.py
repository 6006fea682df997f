"""The secret box: secrets stored in the table (database passwords, registry
credentials) are sealed with a Fernet key from the setting CORRAL_SECRET_KEY, and
opened only by the workers that use them. Nothing sealed is ever shown by a route."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.errors import ServiceUnavailable
from shared.settings import Settings

if TYPE_CHECKING:
    from cryptography.fernet import Fernet


class SecretBox:
    def __init__(self, key: str | None) -> None:
        self._key = key
        self._fernet: Fernet | None = None

    @classmethod
    def of(cls, settings: Settings) -> SecretBox:
        return cls(settings.secret_key)

    def _box(self) -> Fernet:
        if self._fernet is None:
            if not self._key:
                raise ServiceUnavailable(
                    "Corral has no secret key (CORRAL_SECRET_KEY): it cannot store secrets."
                )
            from cryptography.fernet import Fernet

            try:
                self._fernet = Fernet(self._key.encode())
            except ValueError as exc:
                raise ServiceUnavailable(
                    "CORRAL_SECRET_KEY is not a Fernet key (urlsafe base64 of 32 bytes)."
                ) from exc
        return self._fernet

    def seal(self, secret: str) -> str:
        return self._box().encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        from cryptography.fernet import InvalidToken

        try:
            return self._box().decrypt(sealed.encode()).decode()
        except InvalidToken as exc:
            raise ServiceUnavailable("A stored secret cannot be opened with this key.") from exc


def new_secret_key() -> str:
    """A fresh key for CORRAL_SECRET_KEY (make run and the tests make one)."""
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()
