"""Backups in a folder on the worker machines (and the API's, for downloads): one file
per archive, written under a temporary name (`.<name>.<random>.part`, beside it) and
renamed into place when complete. A worker killed while it wrote leaves its temporary
file: the next write of the same archive (the operation's retry) and its deletion
remove it."""

from __future__ import annotations

import glob
import os
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

from infra.archives.store import CHUNK_BYTES, ArchiveMissing, Hashing, StoredArchive, StoreFailed


class FolderStore:
    def __init__(self, root: str) -> None:
        self._root = Path(root).resolve()

    def put(self, key: str, chunks: Iterable[bytes]) -> StoredArchive:
        path = self._path(key)
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
        hashing = Hashing(chunks)
        try:
            with _failing_as_store(f"write {path}"):
                path.parent.mkdir(parents=True, exist_ok=True)
                _remove_leftovers(path)
                out = partial.open("wb")
            with out:
                for chunk in hashing:
                    with _failing_as_store(f"write {partial}"):
                        out.write(chunk)
                with _failing_as_store(f"write {partial}"):
                    out.flush()
                    os.fsync(out.fileno())
            with _failing_as_store(f"rename {partial}"):
                partial.replace(path)
        finally:
            with suppress(OSError):  # the folder's own failure was reported already
                partial.unlink(missing_ok=True)
        return hashing.stored()

    def read(self, key: str) -> Iterator[bytes]:
        path = self._path(key)
        try:
            archive = path.open("rb")
        except FileNotFoundError:
            raise ArchiveMissing(key) from None
        except OSError as exc:
            raise StoreFailed(f"read {path}: {exc}") from exc
        return _chunks_of(archive, path)

    def delete(self, key: str) -> None:
        path = self._path(key)
        with _failing_as_store(f"delete {path}"):
            path.unlink(missing_ok=True)
            _remove_leftovers(path)

    def _path(self, key: str) -> Path:
        path = (self._root / key).resolve()
        if not path.is_relative_to(self._root):
            raise ValueError(f"archive key {key!r} leaves the backup folder")
        return path


def _remove_leftovers(path: Path) -> None:
    """The temporary files of earlier writes of `path` that never finished (one archive
    is written by one operation at a time: any found is a dead worker's)."""
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.part"):
        leftover.unlink(missing_ok=True)


def _chunks_of(archive: BinaryIO, path: Path) -> Iterator[bytes]:
    with archive:
        while True:
            with _failing_as_store(f"read {path}"):
                chunk = archive.read(CHUNK_BYTES)
            if not chunk:
                return
            yield chunk


@contextmanager
def _failing_as_store(action: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise StoreFailed(f"backup folder: {action}: {exc}") from exc
