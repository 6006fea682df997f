"""Backups in a folder on the worker machines (and the API's, for downloads): one file
per archive, written under a temporary name and renamed into place when complete."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from infra.archives.store import CHUNK_BYTES, ArchiveMissing, Hashing, StoredArchive


class FolderStore:
    def __init__(self, root: str) -> None:
        self._root = Path(root).resolve()

    def put(self, key: str, chunks: Iterable[bytes]) -> StoredArchive:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
        hashing = Hashing(chunks)
        try:
            with partial.open("wb") as out:
                for chunk in hashing:
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            partial.replace(path)
        finally:
            partial.unlink(missing_ok=True)
        return hashing.stored()

    def read(self, key: str) -> Iterator[bytes]:
        path = self._path(key)
        try:
            archive = path.open("rb")
        except FileNotFoundError:
            raise ArchiveMissing(key) from None
        return _chunks_of(archive)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def _path(self, key: str) -> Path:
        path = (self._root / key).resolve()
        if not path.is_relative_to(self._root):
            raise ValueError(f"archive key {key!r} leaves the backup folder")
        return path


def _chunks_of(archive: BinaryIO) -> Iterator[bytes]:
    with archive:
        while chunk := archive.read(CHUNK_BYTES):
            yield chunk
