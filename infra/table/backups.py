"""Backups: the item `CLUSTER#<cluster>` / `BACKUP#<workload>#<id>`, so that a
container's backups are one query. A backup changes status only under the condition
that it is in the status the change starts from; the workload's `backup_count` (its
slots in use) moves in the same transactions (see `Repository`)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from infra.table import schema
from infra.table.attributes import Item, failure_attrs, failure_from, moment, set_failure
from infra.table.dynamo import Dynamo, FailureHandler, TxEntry
from infra.table.expression import Expression
from shared.backups import Backup, BackupStatus
from shared.clock import iso, stamp
from shared.errors import ActionNotAllowed, Conflict, CorralError, Failure, NotFound


def backup_item(b: Backup) -> Item:
    return {
        "pk": schema.cluster_pk(b.cluster_id),
        "sk": schema.backup_sk(b.workload_id, b.id),
        "type": "backup",
        "id": b.id,
        "cluster_id": b.cluster_id,
        "workload_id": b.workload_id,
        "name": b.name,
        "status": b.status.value,
        "data_path": b.data_path,
        "holds_slot": b.holds_slot,
        "size_bytes": b.size_bytes,
        "checksum": b.checksum,
        "last_op": b.last_op,
        **failure_attrs(b.failure),
        "created_at": iso(b.created_at),
        "updated_at": iso(b.updated_at),
    }


def backup_from(item: Item) -> Backup:
    size = item.get("size_bytes")
    return Backup(
        id=item["id"],
        cluster_id=item["cluster_id"],
        workload_id=item["workload_id"],
        name=item.get("name"),
        status=BackupStatus(item["status"]),
        data_path=item["data_path"],
        holds_slot=bool(item.get("holds_slot", False)),
        size_bytes=int(size) if size is not None else None,
        checksum=item.get("checksum"),
        last_op=item["last_op"],
        failure=failure_from(item),
        created_at=moment(item["created_at"]),
        updated_at=moment(item["updated_at"]),
    )


def _refuse_change(action: str) -> FailureHandler:
    def refuse(old: Item | None) -> CorralError:
        if old is None:
            return NotFound("Backup not found.")
        return ActionNotAllowed(f"Cannot {action} a backup that is {old['status']}.")

    return refuse


def _finished(_: Item | None) -> CorralError:
    return Conflict("already finished")


class BackupStore:
    def __init__(self, db: Dynamo) -> None:
        self.db = db

    # -- reads -------------------------------------------------------------------

    def get(self, cluster_id: str, workload_id: str, backup_id: str) -> Backup:
        item = self.db.get(schema.cluster_pk(cluster_id), schema.backup_sk(workload_id, backup_id))
        if item is None:
            raise NotFound("Backup not found.")
        return backup_from(item)

    def of_workload(self, cluster_id: str, workload_id: str) -> list[Backup]:
        """A container's backups, oldest first (ids sort by time)."""
        items = self.db.query(
            schema.cluster_pk(cluster_id), sk_prefix=schema.backup_sk(workload_id), consistent=True
        )
        return sorted((backup_from(i) for i in items), key=lambda b: (b.created_at, b.id))

    # -- writes ------------------------------------------------------------------

    def forget(self, backup: Backup) -> None:
        """Drop the record (its archive is gone already). Missing is success."""
        self.db.delete(schema.cluster_pk(backup.cluster_id), self._sk(backup))

    # -- transaction entries -----------------------------------------------------

    def put_new(self, backup: Backup) -> TxEntry:
        return self.db.tx_put(
            backup_item(backup),
            Expression().when_absent(),
            on_fail=lambda _: Conflict("A backup id is taken; retry."),
        )

    def begin(
        self,
        backup: Backup,
        status: BackupStatus,
        operation_id: str,
        now: datetime,
        *,
        allowed_from: Iterable[BackupStatus],
        action: str,
    ) -> TxEntry:
        """Move the backup into `status` for operation `operation_id`, if it is in one
        of `allowed_from`."""
        write = Expression().set("status", status.value).set("last_op", operation_id)
        write.set("updated_at", stamp(now)).when_in("status", (s.value for s in allowed_from))
        return self.db.tx_update(
            schema.cluster_pk(backup.cluster_id),
            self._sk(backup),
            write,
            on_fail=_refuse_change(action),
        )

    def finish(
        self,
        backup: Backup,
        operation_id: str,
        status: BackupStatus,
        now: datetime,
        *,
        failure: Failure | None = None,
        archive: tuple[int, str] | None = None,
    ) -> TxEntry:
        """Record the end of the backup's operation `operation_id`: its new status, the
        archive's (size, checksum) once stored, a failure (which gives the slot back)."""
        write = Expression().set("status", status.value).set("updated_at", stamp(now))
        if archive is not None:
            write.set("size_bytes", archive[0]).set("checksum", archive[1])
        if status is BackupStatus.FAILED:
            write.set("holds_slot", False)
        set_failure(write, failure)
        write.when_equal("last_op", operation_id)
        return self.db.tx_update(
            schema.cluster_pk(backup.cluster_id), self._sk(backup), write, on_fail=_finished
        )

    def delete(self, backup: Backup, operation_id: str) -> TxEntry:
        """Drop the record at the end of its delete operation `operation_id`."""
        return self.db.tx_delete(
            schema.cluster_pk(backup.cluster_id),
            self._sk(backup),
            Expression().when_equal("last_op", operation_id),
            on_fail=_finished,
        )

    @staticmethod
    def _sk(backup: Backup) -> str:
        return schema.backup_sk(backup.workload_id, backup.id)
