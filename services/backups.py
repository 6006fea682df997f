"""What a tenant's backup request means: check the container and the backup, write the
intent with conditions (the backup slot, the workload's one change in flight), enqueue
the job. Reading an archive back (a download) streams it from the backup store."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from infra.archives.store import ArchiveMissing, ArchiveStore, StoreFailed, store_for
from infra.table.repository import no_backup_slot_message
from services import operations
from services.deps import Deps
from shared import rules
from shared.backups import VM_DISK, Backup, BackupStatus
from shared.errors import ActionNotAllowed, CapacityExceeded, NotFound, ServiceUnavailable
from shared.models import Engine, Operation, OperationParams, Workload
from shared.requests import BackupCreate
from shared.runtime import DEFAULT_DATA_PATH
from shared.states import OperationKind, check_backupable, operation_in_flight


class BackupService:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._repo = deps.repo

    # -- reads ------------------------------------------------------------------

    def list(self, cluster_id: str, workload_id: str) -> list[Backup]:
        found = self._repo.backups.of_workload(cluster_id, workload_id)
        if not found:
            self._repo.workloads.get(cluster_id, workload_id)  # not_found when no container
        return found

    def get(self, cluster_id: str, workload_id: str, backup_id: str) -> Backup:
        return self._repo.backups.get(cluster_id, workload_id, backup_id)

    def download(
        self, cluster_id: str, workload_id: str, backup_id: str
    ) -> tuple[Backup, Iterator[bytes]]:
        """A ready backup and its archive, streamed from the backup store."""
        backup = self.get(cluster_id, workload_id, backup_id)
        if backup.status not in (BackupStatus.READY, BackupStatus.RESTORING):
            raise ActionNotAllowed(f"Cannot download a backup that is {backup.status.value}.")
        try:
            return backup, self._store().read(backup.archive_key)
        except ArchiveMissing:
            raise NotFound("The backup's archive is missing from the backup store.") from None
        except StoreFailed as exc:
            raise ServiceUnavailable("The backup store did not answer. Retry later.") from exc

    # -- changes ----------------------------------------------------------------

    def create(
        self, cluster_id: str, workload_id: str, body: BackupCreate
    ) -> tuple[Backup, Operation]:
        workload = self._ready_container(cluster_id, workload_id, "back up")
        if workload.backup_count >= workload.resources.backups:
            raise CapacityExceeded(no_backup_slot_message(workload.resources.backups))
        now = self._deps.clock()
        backup_id = self._deps.new_id()
        operation = self._operation(workload, OperationKind.BACKUP, backup_id)
        backup = Backup(
            id=backup_id,
            cluster_id=cluster_id,
            workload_id=workload.id,
            name=body.name,
            status=BackupStatus.CREATING,
            data_path=self._data_path(workload),
            created_at=now,
            updated_at=now,
            last_op=operation.id,
        )
        self._repo.create_backup(workload, backup, operation)
        operations.enqueue(self._deps.jobs, operation)
        return backup, operation

    def restore(
        self, cluster_id: str, workload_id: str, backup_id: str
    ) -> tuple[Backup, Operation]:
        workload = self._ready_container(cluster_id, workload_id, "restore")
        backup = self.get(cluster_id, workload_id, backup_id)
        if backup.status != BackupStatus.READY:
            raise ActionNotAllowed(f"Cannot restore a backup that is {backup.status.value}.")
        operation = self._operation(workload, OperationKind.RESTORE, backup.id)
        self._repo.begin_backup_operation(
            workload, backup, operation, BackupStatus.RESTORING, (BackupStatus.READY,), "restore"
        )
        operations.enqueue(self._deps.jobs, operation)
        return _changed(backup, BackupStatus.RESTORING, operation), operation

    def delete(
        self, cluster_id: str, workload_id: str, backup_id: str
    ) -> tuple[Backup, Operation] | None:
        """Delete a backup as an operation of its container; None when the container is
        gone (its backups were kept, CORRAL_KEEP_BACKUPS): then the backup is deleted
        here and now, there being no container for an operation."""
        backup = self.get(cluster_id, workload_id, backup_id)
        try:
            workload = self._repo.workloads.get(cluster_id, workload_id)
        except NotFound:
            workload = None
        if workload is None or workload.status.is_gone:
            try:
                self._store().delete(backup.archive_key)
            except StoreFailed as exc:
                raise ServiceUnavailable("The backup store did not answer. Retry later.") from exc
            self._repo.backups.forget(backup)
            return None
        self._idle(workload)
        rules.require_active(self._repo.clusters.get(cluster_id))
        deletable = (BackupStatus.READY, BackupStatus.FAILED)
        if backup.status not in deletable:
            raise ActionNotAllowed(f"Cannot delete a backup that is {backup.status.value}.")
        operation = self._operation(workload, OperationKind.DELETE_BACKUP, backup.id)
        self._repo.begin_backup_operation(
            workload, backup, operation, BackupStatus.DELETING, deletable, "delete"
        )
        operations.enqueue(self._deps.jobs, operation)
        return _changed(backup, BackupStatus.DELETING, operation), operation

    # -- helpers ----------------------------------------------------------------

    def _ready_container(self, cluster_id: str, workload_id: str, action: str) -> Workload:
        """The container (or VM), idle, in its active cluster, in a status it can be
        backed up or restored from."""
        workload = self._repo.workloads.get(cluster_id, workload_id)
        if workload.status.is_gone:
            raise NotFound(f"Container is {workload.status.value}.")
        self._idle(workload)
        rules.require_active(self._repo.clusters.get(cluster_id))
        check_backupable(action, workload.status)
        return workload

    @staticmethod
    def _idle(workload: Workload) -> None:
        if workload.pending_op:
            raise operation_in_flight(workload.pending_op)

    def _data_path(self, workload: Workload) -> str:
        if workload.engine == Engine.QEMU:
            return VM_DISK
        try:
            return self._repo.eggs.get(workload.egg_id).data_path
        except NotFound:  # the operator deleted the egg: its data path was the default
            return DEFAULT_DATA_PATH

    def _operation(self, workload: Workload, kind: OperationKind, backup_id: str) -> Operation:
        return operations.queued(
            self._deps.new_operation_id(),
            workload.cluster_id,
            workload.id,
            kind,
            OperationParams(backup_id=backup_id),
            self._deps.clock(),
        )

    def _store(self) -> ArchiveStore:
        return store_for(self._deps.settings)


def _changed(backup: Backup, status: BackupStatus, operation: Operation) -> Backup:
    return replace(backup, status=status, last_op=operation.id, updated_at=operation.created_at)
