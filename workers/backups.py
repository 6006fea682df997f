"""The workers' side of backups: archive a workload's data path into the backup store,
put an archive back, delete archives; and the table entries that close a backup's
operation (in the transaction that closes the operation, see `workers.jobs._record`).

Each step is safe to run again: an archive is stored under the backup's own key (a
re-run replaces it), a restore starts from the stored archive again, deleting what is
gone already is success."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

from infra.archives.store import (
    ArchiveMissing,
    ArchiveStore,
    Hashing,
    StoredArchive,
    StoreFailed,
    checksum_of,
    store_for,
)
from infra.drivers.base import DataArchiver, HostDriver
from infra.table.dynamo import TxEntry
from shared.backups import (
    ARCHIVE_HEAD_BYTES,
    Backup,
    BackupRefused,
    BackupStatus,
    is_empty_directory,
    no_data,
)
from shared.errors import Failure, HostError, NotFound
from shared.models import Operation, Workload
from shared.runtime import RuntimeState
from shared.states import OperationKind, PowerSignal
from workers.context import WorkerContext

log = logging.getLogger("corral.backups")


def _archiver(driver: HostDriver) -> DataArchiver:
    if not isinstance(driver, DataArchiver):
        raise BackupRefused(
            "backups_unsupported", "Backups are not available for this kind of workload."
        )
    return driver


def _backup_of(ctx: WorkerContext, op: Operation) -> Backup:
    if op.params.backup_id is None:
        raise ValueError(f"operation {op.id} names no backup")
    return ctx.repo.backups.get(op.cluster_id, op.workload_id, op.params.backup_id)


def _store(ctx: WorkerContext) -> ArchiveStore:
    return store_for(ctx.settings)


@contextmanager
def _store_errors() -> Iterator[None]:
    """The backup store's failures as host errors: retried (transient), then recorded
    with plain words for the tenant and the store's own for the operator."""
    try:
        yield
    except StoreFailed as exc:
        raise HostError(
            str(exc),
            transient=True,
            code="backup_store_failed",
            public="The backup store did not answer, even after retries. The operator has "
            "the details.",
        ) from exc


@_store_errors()
def take(
    ctx: WorkerContext, driver: HostDriver, workload: Workload, op: Operation
) -> StoredArchive:
    """Stream the workload's data path into the store under the backup's key."""
    backup = _backup_of(ctx, op)
    archive = _archiver(driver).archive_data(workload.id, backup.data_path)
    with _closing(archive) as chunks:
        first = next(chunks, None)  # the host answers now: no such path fails before storing
        if first is None:
            raise no_data(backup.data_path)
        head = bytearray()
        store = _store(ctx)
        whole = itertools.chain([first], chunks)
        stored = store.put(backup.archive_key, _keeping_head(whole, head))
    if is_empty_directory(bytes(head)):
        store.delete(backup.archive_key)
        raise no_data(backup.data_path)
    log.info("backup %s stored: %d bytes", backup.id, stored.size_bytes)
    return stored


@contextmanager
def _closing(chunks: Iterator[bytes]) -> Iterator[Iterator[bytes]]:
    """An archive stream closed once done with, read through or not: what it holds on
    its host (a channel, a VM's disk copy) is released by this job, not by a later
    garbage collection."""
    try:
        yield chunks
    finally:
        close = getattr(chunks, "close", None)
        if callable(close):
            close()


def _keeping_head(chunks: Iterable[bytes], head: bytearray) -> Iterator[bytes]:
    for chunk in chunks:
        if len(head) < ARCHIVE_HEAD_BYTES:
            head.extend(chunk[: ARCHIVE_HEAD_BYTES - len(head)])
        yield chunk


@_store_errors()
def restore(
    ctx: WorkerContext, driver: HostDriver, workload: Workload, op: Operation, stop_timeout: int
) -> None:
    """Check the stored archive against the backup's checksum (refused, the container
    untouched, when it no longer matches), stop the workload, and replace its data
    path's contents with the archive. Bringing it back up is the caller's."""
    backup = _backup_of(ctx, op)
    archiver = _archiver(driver)
    store = _store(ctx)
    try:
        found = checksum_of(store, backup.archive_key)
    except ArchiveMissing:
        raise BackupRefused(
            "archive_missing", "The backup's archive is missing from the backup store."
        ) from None
    if found != backup.checksum:
        raise BackupRefused(
            "checksum_mismatch",
            "The backup's archive no longer matches its checksum; the container was not touched.",
            f"archive {backup.archive_key}: sha256 {found}, recorded {backup.checksum}",
        )
    state = driver.inspect(workload.id).state
    if state == RuntimeState.MISSING:
        raise BackupRefused("missing", "The container is missing on its host.")
    if state != RuntimeState.STOPPED:
        driver.power(workload.id, PowerSignal.STOP, stop_timeout)
    hashing = Hashing(store.read(backup.archive_key))
    archiver.restore_data(workload.id, backup.data_path, hashing)
    if hashing.checksum != backup.checksum:
        raise HostError(
            f"archive {backup.archive_key} changed during the restore (sha256 {hashing.checksum})",
            code="checksum_mismatch",
            public="The backup's archive changed while it was restored; restore it again.",
        )


@_store_errors()
def delete(ctx: WorkerContext, op: Operation) -> None:
    """Remove the backup's archive from the store (its record goes when the operation
    closes)."""
    _store(ctx).delete(_backup_of(ctx, op).archive_key)


@_store_errors()
def discard_all(ctx: WorkerContext, workload: Workload) -> None:
    """Delete the backups of a workload that is being deleted (unless the operator keeps
    them, CORRAL_KEEP_BACKUPS): archives first, then their records."""
    if ctx.settings.keep_backups:
        return
    store = _store(ctx)
    for backup in ctx.repo.backups.of_workload(workload.cluster_id, workload.id):
        store.delete(backup.archive_key)
        ctx.repo.backups.forget(backup)


def closing(
    ctx: WorkerContext,
    op: Operation,
    archive: StoredArchive | None,
    failure: Failure | None,
) -> tuple[Sequence[TxEntry], int]:
    """The entries that close what operation `op` did to its backup, and how many of
    the workload's backup slots it gives back."""
    try:
        backup = _backup_of(ctx, op)
    except NotFound:
        return (), 0
    backups, now = ctx.repo.backups, ctx.clock()
    freed = 1 if backup.holds_slot else 0
    if op.kind == OperationKind.BACKUP:
        if failure is None and archive is not None:
            size_and_sum = (archive.size_bytes, archive.checksum)
            return [backups.finish(backup, op.id, BackupStatus.READY, now, archive=size_and_sum)], 0
        return [backups.finish(backup, op.id, BackupStatus.FAILED, now, failure=failure)], freed
    if op.kind == OperationKind.DELETE_BACKUP and failure is None:
        return [backups.delete(backup, op.id)], freed
    # A restore (whatever its outcome: the operation records it), or a deletion that
    # failed: the backup is back to what it was.
    back = BackupStatus.READY if backup.holds_slot else BackupStatus.FAILED
    return [backups.finish(backup, op.id, back, now, failure=backup.failure)], 0
