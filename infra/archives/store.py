"""What every backup store does, the stream helpers they share, and the one place that
picks the store the operator configured (`store_for`)."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from shared.settings import Settings

CHUNK_BYTES = 1024 * 1024


class ArchiveMissing(Exception):
    """The store has no archive under the key."""


class StoreFailed(Exception):
    """The backup store refused or did not answer (the message says which store and
    why; it may name paths and endpoints: the operator's, not the tenant's)."""


@dataclass(frozen=True)
class StoredArchive:
    size_bytes: int
    checksum: str  # hex sha256


class ArchiveStore(Protocol):
    def put(self, key: str, chunks: Iterable[bytes]) -> StoredArchive:
        """Store the archive `chunks` stream under `key` (replacing any), hashing as it
        goes; a reader never sees a half-written archive."""
        ...

    def read(self, key: str) -> Iterator[bytes]:
        """The archive under `key`, chunk by chunk; ArchiveMissing when there is none."""
        ...

    def delete(self, key: str) -> None:
        """Remove the archive under `key`. Missing is success."""
        ...


class Hashing:
    """Passes a stream of chunks through, counting its bytes and hashing them."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks
        self._sha256 = hashlib.sha256()
        self.size_bytes = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self._sha256.update(chunk)
            self.size_bytes += len(chunk)
            yield chunk

    @property
    def checksum(self) -> str:
        return self._sha256.hexdigest()

    def stored(self) -> StoredArchive:
        return StoredArchive(self.size_bytes, self.checksum)


def checksum_of(store: ArchiveStore, key: str) -> str:
    """The sha256 of the stored archive, read through once."""
    hashing = Hashing(store.read(key))
    for _ in hashing:
        pass
    return hashing.checksum


class ChunkReader(io.RawIOBase):
    """A read-only file over a stream of chunks (what boto3's upload_fileobj reads)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


@lru_cache(maxsize=16)
def store_for(settings: Settings) -> ArchiveStore:
    """The backup store `settings` name (CORRAL_BACKUP_STORE: folder or s3)."""
    if settings.backup_store == "folder":
        from infra.archives.folder import FolderStore

        return FolderStore(settings.backup_folder)
    if settings.backup_store == "s3":
        from infra.archives.s3 import S3Store

        return S3Store.from_settings(settings)
    raise ValueError(f"CORRAL_BACKUP_STORE must be folder or s3, not {settings.backup_store!r}")
