"""The backup store's folder and the archive checks, without a container engine."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from infra.archives.folder import FolderStore
from infra.archives.store import ArchiveMissing, ChunkReader, StoreFailed, checksum_of
from shared.backups import ARCHIVE_HEAD_BYTES, is_empty_directory


def _tar(*entries: tuple[str, bytes | None]) -> bytes:
    """A tar of (name, content) entries; None content makes a directory."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content in entries:
            info = tarfile.TarInfo(name)
            if content is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def test_an_archive_of_an_empty_directory_has_no_data() -> None:
    assert is_empty_directory(_tar(("data", None)))
    assert not is_empty_directory(_tar(("data", None), ("data/a", b"x")))
    assert not is_empty_directory(_tar(("data", None), ("data/sub", None)))
    assert not is_empty_directory(_tar(("data", b"a file, not a directory")))
    assert not is_empty_directory(b"")  # no entry at all is not an empty directory
    # only the head is looked at: a first file larger than it still counts as data
    big = _tar(("data", None), ("data/big", b"y" * (2 * ARCHIVE_HEAD_BYTES)))
    assert not is_empty_directory(big[:ARCHIVE_HEAD_BYTES])
    assert not is_empty_directory(_tar(("data", b"z" * ARCHIVE_HEAD_BYTES))[:ARCHIVE_HEAD_BYTES])


def test_the_folder_store_streams_in_and_out(tmp_path: Path) -> None:
    store = FolderStore(str(tmp_path))
    chunks = [bytes([n]) * 70_000 for n in range(40)]  # 2.8 MB in uneven chunks
    stored = store.put("c/w/b.tar", iter(chunks))
    whole = b"".join(chunks)
    assert stored.size_bytes == len(whole)
    assert stored.checksum == hashlib.sha256(whole).hexdigest()
    assert b"".join(store.read("c/w/b.tar")) == whole
    assert checksum_of(store, "c/w/b.tar") == stored.checksum
    assert [p.name for p in (tmp_path / "c" / "w").iterdir()] == ["b.tar"]  # no leftovers
    store.delete("c/w/b.tar")
    store.delete("c/w/b.tar")  # missing is success
    with pytest.raises(ArchiveMissing):
        store.read("c/w/b.tar")


def test_a_failed_upload_leaves_the_previous_archive(tmp_path: Path) -> None:
    store = FolderStore(str(tmp_path))
    store.put("k.tar", [b"first"])

    def broken() -> object:
        yield b"partial"
        raise OSError("the engine went away")

    with pytest.raises(OSError):
        store.put("k.tar", broken())  # type: ignore[arg-type]
    assert b"".join(store.read("k.tar")) == b"first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.tar"]


def test_keys_stay_inside_the_folder(tmp_path: Path) -> None:
    store = FolderStore(str(tmp_path / "inner"))
    with pytest.raises(ValueError):
        store.put("../outside.tar", [b"x"])
    assert not (tmp_path / "outside.tar").exists()


def test_the_chunk_reader_reads_across_chunks() -> None:
    reader = ChunkReader(iter([b"ab", b"", b"cde", b"f"]))
    assert reader.read(4) + reader.read(10) + reader.read(1) == b"abcdef"


def test_a_folder_that_cannot_be_written_is_a_store_failure(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"a file where the folder should be")
    store = FolderStore(str(tmp_path / "file"))
    with pytest.raises(StoreFailed, match="backup folder"):
        store.put("c/w/b.tar", [b"x"])
