"""A container's data path, archived and restored through the engine's archive API
(`GET`/`PUT /containers/{id}/archive`), so it works on remote engines and whether or not
the path is a volume. The archive is the engine's tar of the path: its first entry is
the path's own directory, named by the path's last segment.

Clearing the path before a restore (the container stopped):
- when the path is in the container's own filesystem, a one-entry archive that holds a
  plain file of the directory's name replaces the directory (the engine removes what
  stands where an archive puts a file), and the backup's archive then replaces that file
  with its directory;
- when the path is a volume (its mount point cannot be removed), a short-lived helper
  container from the workload's own image, sharing its volumes, deletes the contents
  with the image's /bin/sh and rm (an image without them cannot be restored into a
  volume: the restore fails with restore_failed).
"""

from __future__ import annotations

import io
import posixpath
import tarfile
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import docker.errors

from shared.backups import no_data
from shared.errors import HostError

ARCHIVE_CHUNK_BYTES = 1024 * 1024
HELPER_TIMEOUT_S = 120
# Deletes every entry of the directory $1, dot files included; a pattern that matches
# nothing stays as it is and `rm -f` ignores it.
EMPTY_SCRIPT = 'cd -- "$1" && rm -rf -- * .[!.]* ..?*'


def archive(api: Any, name: str, path: str) -> Iterator[bytes]:
    """The tar stream of `path` in container `name`; no_data when there is no such path."""
    try:
        chunks, _stat = api.get_archive(name, path, chunk_size=ARCHIVE_CHUNK_BYTES)
    except docker.errors.NotFound:
        raise no_data(path) from None
    return iter(chunks)


def replace(
    api: Any, name: str, path: str, chunks: Iterable[bytes], attrs: Mapping[str, Any]
) -> None:
    """Replace the contents of `path` in the stopped container `name` (inspected as
    `attrs`) with the archive `chunks` (one taken by `archive` of the same path)."""
    parent, base = posixpath.split(path)
    if _is_mounted(attrs, path):
        _empty_volume(api, name, path, attrs)
    else:
        api.put_archive(name, parent, _lone_file(base))
    if not api.put_archive(name, parent, chunks):
        raise HostError(f"the engine refused the archive for {path} in container {name}")


def _is_mounted(attrs: Mapping[str, Any], path: str) -> bool:
    return any(mount.get("Destination") == path for mount in attrs.get("Mounts") or [])


def _lone_file(base: str) -> bytes:
    """A tar holding one empty file named `base` (a few hundred bytes)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.addfile(tarfile.TarInfo(base), io.BytesIO(b""))
    return buffer.getvalue()


def _empty_volume(api: Any, name: str, path: str, attrs: Mapping[str, Any]) -> None:
    image = (attrs.get("Config") or {}).get("Image") or attrs.get("Image")
    helper = api.create_container(
        image,
        # The path is the script's argument ($1), never part of the shell line.
        entrypoint=["/bin/sh", "-c", EMPTY_SCRIPT, "corral-restore", path],
        labels={"io.corral.helper": "restore"},
        host_config=api.create_host_config(volumes_from=[name], network_mode="none"),
    )
    try:
        try:
            api.start(helper)
        except docker.errors.APIError as exc:
            raise HostError(
                f"emptying {path} of container {name}: the helper did not start: {exc}",
                code="restore_failed",
                public="The container's image has no /bin/sh to clear its data with.",
            ) from exc
        result = api.wait(helper, timeout=HELPER_TIMEOUT_S)
        if result.get("StatusCode") != 0:
            raise HostError(
                f"emptying {path} of container {name} failed (exit {result.get('StatusCode')})",
                code="restore_failed",
                public="The container's data could not be cleared for the restore.",
            )
    finally:
        api.remove_container(helper, force=True)
