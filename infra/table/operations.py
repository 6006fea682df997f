"""Operations: the item `CLUSTER#<cluster>` / `OP#<id>`, on the sparse GSI2 pending index
until it finishes; a finished one ages out of the table after the retention period."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from infra.table import schema
from infra.table.attributes import Item, failure_attrs, failure_from, moment, set_failure
from infra.table.dynamo import Dynamo, TxEntry
from infra.table.expression import Expression
from shared.changes import operation_change
from shared.clock import iso, parse_iso, sortable, stamp
from shared.errors import Conflict, Failure, NotFound
from shared.models import Operation, OperationParams
from shared.states import OperationKind, OperationStatus


def operation_item(o: Operation) -> Item:
    return {
        "pk": schema.cluster_pk(o.cluster_id),
        "sk": schema.operation_sk(o.id),
        "type": "operation",
        "id": o.id,
        "cluster_id": o.cluster_id,
        "workload_id": o.workload_id,
        "kind": o.kind.value,
        "params": o.params.to_json(),
        "status": o.status.value,
        **failure_attrs(o.failure),
        "created_at": iso(o.created_at),
        "updated_at": iso(o.updated_at),
        "started_at": iso(o.started_at),
        "finished_at": iso(o.finished_at),
        "progress": o.progress,
        **(pending_keys(o.id, o.created_at) if not o.status.is_finished else {}),
    }


def operation_from(item: Item) -> Operation:
    return Operation(
        id=item["id"],
        cluster_id=item["cluster_id"],
        workload_id=item["workload_id"],
        kind=OperationKind(item["kind"]),
        params=OperationParams.from_json(item.get("params", {})),
        status=OperationStatus(item["status"]),
        failure=failure_from(item),
        created_at=moment(item["created_at"]),
        updated_at=moment(item["updated_at"]),
        started_at=parse_iso(item.get("started_at")),
        finished_at=parse_iso(item.get("finished_at")),
        progress=item.get("progress"),
    )


def pending_keys(operation_id: str, created_at: datetime) -> Item:
    """GSI2 keys that list an unfinished operation for the reconciler."""
    return {
        "gsi2pk": schema.pending_pk(schema.shard_of(operation_id)),
        "gsi2sk": f"{sortable(created_at)}#{operation_id}",
    }


def _created(operation: Operation) -> datetime:
    return operation.created_at


class OperationStore:
    def __init__(self, db: Dynamo) -> None:
        self.db = db

    def get(self, cluster_id: str, operation_id: str) -> Operation:
        item = self.db.get(schema.cluster_pk(cluster_id), schema.operation_sk(operation_id))
        if item is None:
            raise NotFound("Operation not found.")
        return operation_from(item)

    def in_cluster(self, cluster_id: str) -> list[Operation]:
        """Every operation of the cluster kept (finished ones age out after the
        retention), in no particular order: ids are random."""
        items = self.db.query(schema.cluster_pk(cluster_id), sk_prefix="OP#")
        return [operation_from(i) for i in items]

    def recent(self, cluster_id: str, limit: int) -> list[Operation]:
        """The cluster's latest `limit` operations, newest first."""
        return sorted(self.in_cluster(cluster_id), key=_created, reverse=True)[:limit]

    def pending(self, older_than: datetime, limit: int) -> list[tuple[str, str]]:
        """(cluster id, operation id) of unfinished operations created before `older_than`."""
        return self.db.sharded_index_keys(schema.pending_pk, sortable(older_than), limit)

    def mark_running(self, operation: Operation, now: datetime) -> Operation:
        """`operation` (as just read) running since `now`, or since it first ran (a
        re-run); Conflict when it finished meanwhile."""
        write = Expression().set("status", OperationStatus.RUNNING.value)
        write.set_if_absent("started_at", stamp(now)).set("updated_at", stamp(now))
        write.when_in("status", (OperationStatus.QUEUED.value, OperationStatus.RUNNING.value))
        pk, sk = schema.cluster_pk(operation.cluster_id), schema.operation_sk(operation.id)
        finished = Conflict("Operation already finished.")
        self.db.transact(
            [self.db.tx_update(pk, sk, write, on_fail=lambda _: finished)],
            events=[operation_change(operation, "running")],
        )
        # What the write made of it: no need to read it back.
        return replace(
            operation,
            status=OperationStatus.RUNNING,
            started_at=operation.started_at or now,
            updated_at=now,
        )

    def set_progress(self, operation: Operation, text: str, now: datetime) -> None:
        """Say how far a running operation got; a finished one keeps its last words."""
        write = Expression().set("progress", text).set("updated_at", stamp(now))
        write.when_in("status", (OperationStatus.RUNNING.value,))
        self.db.update(
            schema.cluster_pk(operation.cluster_id),
            schema.operation_sk(operation.id),
            write,
            on_fail=lambda _: Conflict("Operation is not running."),
        )

    def finish(self, operation: Operation, failure: Failure | None, now: datetime) -> None:
        """Close an operation that no workload waits for (an operator's image operation)."""
        closed = OperationStatus.FAILED if failure is not None else OperationStatus.SUCCEEDED
        change = operation_change(replace(operation, status=closed, failure=failure))
        self.db.transact([self.close(operation, failure, now)], events=[change])

    def fail_orphan(self, operation: Operation, failure: Failure, now: datetime) -> None:
        """Close an operation whose workload is gone (nothing left to converge)."""
        self.finish(operation, failure, now)

    # -- transaction entries -----------------------------------------------------

    def put_new(self, operation: Operation) -> TxEntry:
        return self.db.tx_put(
            operation_item(operation),
            Expression().when_absent(),
            on_fail=lambda _: Conflict(f"Operation {operation.id} exists already."),
        )

    def close(self, operation: Operation, failure: Failure | None, now: datetime) -> TxEntry:
        """The operation's final status; it leaves the pending index and ages out."""
        done = OperationStatus.FAILED if failure else OperationStatus.SUCCEEDED
        write = Expression().set_all(
            {
                "status": done.value,
                "updated_at": stamp(now),
                "finished_at": stamp(now),
                schema.TTL_ATTRIBUTE: schema.expires_epoch(now),
            }
        )
        set_failure(write, failure)
        write.remove("gsi2pk", "gsi2sk")
        return self.db.tx_update(
            schema.cluster_pk(operation.cluster_id), schema.operation_sk(operation.id), write
        )
