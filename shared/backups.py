"""Backups: an archive of a workload's data path, kept in the operator's backup store.

A backup takes one of its container's `backups` slots (the container's allocation,
reserved from the cluster's pool when the container was created or resized) from the
moment it is asked for until it is deleted; a backup that failed gives its slot back.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from shared.errors import Failure, HostError


class BackupStatus(StrEnum):
    CREATING = "creating"
    READY = "ready"
    FAILED = "failed"
    RESTORING = "restoring"
    DELETING = "deleting"


@dataclass(frozen=True)
class Backup:
    id: str
    cluster_id: str
    workload_id: str
    name: str | None
    status: BackupStatus
    created_at: datetime
    updated_at: datetime
    last_op: str
    data_path: str  # the path archived, and where a restore puts it back
    holds_slot: bool = True  # counts against its container's `backups` (not once failed)
    size_bytes: int | None = None
    checksum: str | None = None  # hex sha256 of the archive, as stored
    failure: Failure | None = None

    @property
    def archive_key(self) -> str:
        """Where the archive lives in the backup store (a path under the folder, or an
        object key under the bucket's prefix)."""
        return archive_key(self.cluster_id, self.workload_id, self.id)


# What a VM's backup records as its data path: a VM's data is its disk, archived whole
# by its host driver (infra/drivers/qemu/data.py), whatever its egg's data_path says.
VM_DISK = "disk"


def archive_key(cluster_id: str, workload_id: str, backup_id: str) -> str:
    return f"{cluster_id}/{workload_id}/{backup_id}.tar"


class BackupRefused(HostError):
    """A backup's operation stopped before it touched the container (a checksum that no
    longer matches, a container with no data): the container keeps its status."""

    def __init__(self, code: str, public: str, detail: str | None = None) -> None:
        super().__init__(detail or public, code=code, public=public)


# An archive whose first 64 KiB hold a single entry has nothing beyond its root.
ARCHIVE_HEAD_BYTES = 64 * 1024


def is_empty_directory(head: bytes) -> bool:
    """Whether a tar archive that starts with `head` (its first ARCHIVE_HEAD_BYTES, or
    all of it) holds one directory and nothing in it: a data path with no data."""
    entries = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(head), mode="r|") as tar:
            for member in tar:
                entries += 1
                if entries > 1 or not member.isdir():
                    return False
    except tarfile.TarError:
        return False  # cut inside a first entry larger than the head: there is data
    return entries == 1


def no_data(path: str) -> BackupRefused:
    return BackupRefused("no_data", f"The container has no data at {path} to back up.")
