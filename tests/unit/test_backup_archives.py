"""The backup store's folder and the archive checks, without a container engine."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import tarfile
import time
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


# A worker writing an archive: one chunk, then it hangs until it is killed.
HANGING_WRITER = """
import sys, time
from infra.archives.folder import FolderStore
def chunks():
    yield b"half an archive"
    while True:
        time.sleep(1)
FolderStore(sys.argv[1]).put(sys.argv[2], chunks())
"""


def _killed_mid_write(root: Path, key: str) -> Path:
    """Start a real process writing `key` into the folder store at `root`, SIGKILL it
    while it writes, and return the temporary file it left."""
    writer = subprocess.Popen([sys.executable, "-c", HANGING_WRITER, str(root), key])
    try:
        deadline = time.monotonic() + 30
        while not (left := list(root.rglob("*.part"))):
            assert writer.poll() is None, "the writer exited before it wrote"
            assert time.monotonic() < deadline, "the writer wrote nothing in 30 s"
            time.sleep(0.05)
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=10)
    [partial] = left
    assert partial.name.startswith(".")
    return partial


def test_a_worker_killed_mid_write_leaves_nothing_after_the_retry_or_the_delete(
    tmp_path: Path,
) -> None:
    store = FolderStore(str(tmp_path))
    # the operation's retry writes the archive again: the dead worker's file goes
    partial = _killed_mid_write(tmp_path, "c/w/b.tar")
    store.put("c/w/b.tar", [b"whole"])
    assert sorted(p.name for p in partial.parent.iterdir()) == ["b.tar"]
    # the backup is deleted instead (it failed): the dead worker's file goes with it
    partial = _killed_mid_write(tmp_path, "c/w/other.tar")
    store.delete("c/w/other.tar")
    assert sorted(p.name for p in partial.parent.iterdir()) == ["b.tar"]


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
