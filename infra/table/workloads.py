"""Workloads: the item `CLUSTER#<cluster>` / `WORKLOAD#<id>`, listed under its host on
GSI1 (`HOST#<host>`), and on the sparse GSI2 expiry index while it has an expiry and
is not gone. Every change of intent checks and bumps `version`; `pending_op` holds the
one operation in flight. The `health` map is the collector's (see `health`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from infra.table import schema
from infra.table.attributes import (
    Item,
    failure_attrs,
    failure_from,
    moment,
    resources_attrs,
    resources_from,
    set_failure,
)
from infra.table.dynamo import Dynamo, FailureHandler, TxEntry
from infra.table.expression import Expression
from infra.table.health import health_attr, health_from
from shared.allocations import Allocation
from shared.capacity import Resources
from shared.changes import workload_change
from shared.clock import iso, parse_iso, sortable, stamp
from shared.errors import (
    ActionNotAllowed,
    CapacityExceeded,
    Conflict,
    CorralError,
    Failure,
    NotFound,
)
from shared.models import Engine, Host, RestartPolicy, Workload
from shared.states import WorkloadStatus, operation_in_flight
from shared.vm import WorkloadVm

GONE = (WorkloadStatus.DELETING, WorkloadStatus.DELETED, WorkloadStatus.EXPIRED)


def workload_item(w: Workload) -> Item:
    return {
        "pk": schema.cluster_pk(w.cluster_id),
        "sk": schema.workload_sk(w.id),
        "gsi1pk": schema.host_pk(w.host_id),
        "gsi1sk": schema.workload_sk(w.id),
        "type": "workload",
        "id": w.id,
        "cluster_id": w.cluster_id,
        "name": w.name,
        "egg_id": w.egg_id,
        "engine": w.engine.value,
        "host_id": w.host_id,
        **resources_attrs("res", w.resources),
        "status": w.status.value,
        "pending_op": w.pending_op,
        "last_op": w.last_op,
        **failure_attrs(w.failure),
        "enforced": dict(w.enforced),
        "expires_at": iso(w.expires_at),
        **expiry_keys(w.id, w.expires_at if not w.status.is_gone else None),
        "restart_policy": w.restart_policy.value,
        "health": health_attr(w.health),
        "vm": w.vm.to_json() if w.vm is not None else None,
        "restart_needed": w.restart_needed or None,
        "environment": dict(w.environment) or None,
        "databases": list(w.databases) or None,
        "db_count": w.database_count,
        "allocations": allocations_attr(w.allocations),
        "backup_count": w.backup_count,
        "created_at": iso(w.created_at),
        "updated_at": iso(w.updated_at),
        "version": w.version,
    }


def workload_from(item: Item) -> Workload:
    return Workload(
        id=item["id"],
        cluster_id=item["cluster_id"],
        name=item["name"],
        egg_id=item["egg_id"],
        engine=Engine(item["engine"]),
        host_id=item["host_id"],
        resources=resources_from("res", item),
        status=WorkloadStatus(item["status"]),
        pending_op=item.get("pending_op"),
        last_op=item.get("last_op"),
        failure=failure_from(item),
        enforced={k: bool(v) for k, v in item.get("enforced", {}).items()},
        expires_at=parse_iso(item.get("expires_at")),
        restart_policy=RestartPolicy(item.get("restart_policy", RestartPolicy.NEVER.value)),
        health=health_from(item.get("health")),
        vm=WorkloadVm.from_json(item["vm"]) if item.get("vm") else None,
        restart_needed=bool(item.get("restart_needed", False)),
        environment=dict(item.get("environment") or {}),
        databases=tuple(item.get("databases") or ()),
        database_count=int(item.get("db_count", 0)),
        allocations=tuple(Allocation.from_json(a) for a in item.get("allocations") or ()),
        backup_count=int(item.get("backup_count", 0)),
        created_at=moment(item["created_at"]),
        updated_at=moment(item["updated_at"]),
        version=int(item["version"]),
    )


def allocations_attr(allocations: Sequence[Allocation]) -> list[Item] | None:
    return [a.to_json() for a in allocations] or None


def expiry_keys(workload_id: str, expires_at: datetime | None) -> Item:
    """GSI2 keys that put a workload in the expiry index (none: not in it)."""
    if expires_at is None:
        return {}
    return {
        "gsi2pk": schema.expiry_pk(schema.shard_of(workload_id)),
        "gsi2sk": f"{sortable(expires_at)}#{workload_id}",
    }


def refuse_busy(old: Item | None) -> CorralError:
    """Why a container's change was refused: gone, busy, or changed meanwhile."""
    if old is None:
        return NotFound("Container not found.")
    if old.get("pending_op"):
        return operation_in_flight(str(old["pending_op"]))
    return Conflict("The container changed while the request was processed; retry.")


def _refuse_renewal(old: Item | None) -> CorralError:
    if old is None:
        return NotFound("Container not found.")
    return ActionNotAllowed(f"Cannot renew the lease of a container that is {old['status']}.")


class WorkloadStore:
    def __init__(self, db: Dynamo) -> None:
        self.db = db

    # -- reads -------------------------------------------------------------------

    def get(self, cluster_id: str, workload_id: str) -> Workload:
        item = self.db.get(schema.cluster_pk(cluster_id), schema.workload_sk(workload_id))
        if item is None:
            raise NotFound("Container not found.")
        return workload_from(item)

    def in_cluster(self, cluster_id: str) -> list[Workload]:
        items = self.db.query(schema.cluster_pk(cluster_id), sk_prefix="WORKLOAD#", consistent=True)
        return [workload_from(i) for i in items]

    def page_in_cluster(
        self,
        cluster_id: str,
        limit: int,
        start: Item | None,
        keep: Callable[[Workload], bool],
    ) -> tuple[list[Workload], Item | None]:
        """A page of the cluster's workloads that `keep` keeps, in id order, from after
        the table key `start`; and the key the next page starts after."""
        items, last = self.db.page(
            schema.cluster_pk(cluster_id),
            sk_prefix="WORKLOAD#",
            limit=limit,
            start=start,
            keep=lambda item: keep(workload_from(item)),
            consistent=True,
        )
        return [workload_from(i) for i in items], last

    def on_host(self, host_id: str) -> list[Workload]:
        items = self.db.query(schema.host_pk(host_id), sk_prefix="WORKLOAD#", index=schema.GSI1)
        return [workload_from(i) for i in items]

    def find(self, workload_id: str, hosts: Sequence[Host]) -> Workload:
        """A workload by id alone: looked up under each host on GSI1, then read."""
        for host in hosts:
            for item in self.db.query(
                schema.host_pk(host.id),
                sk_prefix=schema.workload_sk(workload_id),
                index=schema.GSI1,
            ):
                if item["id"] == workload_id:
                    found = self.db.get(item["pk"], item["sk"])
                    if found is not None:
                        return workload_from(found)
        raise NotFound("VM not found.")

    def due(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        """(cluster id, workload id) of workloads whose expiry is at or before `now`:
        reads only the due entries of the expiry index (one query per shard)."""
        return self.db.sharded_index_keys(schema.expiry_pk, f"{sortable(now)}~", limit)

    # -- writes ------------------------------------------------------------------

    def set_lease(self, workload: Workload, expires_at: datetime, now: datetime) -> Workload:
        """Move the workload's expiry; refused once it is being deleted or gone."""
        before, after = {"expires_at": iso(workload.expires_at)}, {"expires_at": iso(expires_at)}
        item = self.db.update(
            schema.cluster_pk(workload.cluster_id),
            schema.workload_sk(workload.id),
            _lease(workload, expires_at, now),
            on_fail=_refuse_renewal,
            events=[workload_change("renewed", workload, before, after)],
        )
        return workload_from(item)

    # -- transaction entries -----------------------------------------------------

    def put_new(self, workload: Workload, on_exists: CorralError) -> TxEntry:
        return self.db.tx_put(
            workload_item(workload), Expression().when_absent(), on_fail=lambda _: on_exists
        )

    def lease(self, workload: Workload, expires_at: datetime, now: datetime) -> TxEntry:
        return self.db.tx_update(
            schema.cluster_pk(workload.cluster_id),
            schema.workload_sk(workload.id),
            _lease(workload, expires_at, now),
            on_fail=_refuse_renewal,
        )

    def begin(
        self,
        workload: Workload,
        operation_id: str,
        now: datetime,
        *,
        fields: Item | None = None,
        resources: Resources | None = None,
        takes_backup_slot: bool = False,
        on_fail: FailureHandler = refuse_busy,
        take_database: bool = False,
    ) -> TxEntry:
        """Make `operation_id` the workload's one change in flight, if it is idle and
        unchanged since it was read; `fields` and `resources` change with it. With
        `takes_backup_slot`, one more of its `backups` slots is in use, if one is free;
        with `take_database` it holds one more tenant database, within its allocation."""
        write = Expression().set_all({"pending_op": operation_id, "last_op": operation_id})
        write.add("version", 1).set("updated_at", stamp(now)).set_all(fields or {})
        if resources is not None:
            write.set_all(resources_attrs("res", resources))
            # never below the tenant databases it holds (they count against it)
            held = write.name("db_count")
            write.when(
                f"attribute_not_exists({held}) OR {held} <= {write.value(resources.databases)}"
            )
        if take_database:
            held, allowed = write.name("db_count"), write.name("res_databases")
            write.count("db_count", 1).when(
                f"attribute_not_exists({held}) AND {allowed} > {write.value(0)}"
                f" OR {held} < {allowed}"
            )
        if takes_backup_slot:
            write.count("backup_count", 1)
            write.when_below_or_absent("backup_count", workload.resources.backups)
        write.when_equal("version", workload.version).when_absent("pending_op")
        return self.db.tx_update(
            schema.cluster_pk(workload.cluster_id),
            schema.workload_sk(workload.id),
            write,
            on_fail=on_fail,
        )

    def finish(
        self,
        workload: Workload,
        operation_id: str,
        status: WorkloadStatus,
        failure: Failure | None,
        now: datetime,
        *,
        fields: Item | None = None,
        gone: bool = False,
        backup_slots_freed: int = 0,
    ) -> TxEntry:
        """Record the outcome of `operation_id`, if it is still the one in flight. A gone
        workload leaves the expiry index and the table drops it after the retention."""
        write = Expression().set("status", status.value).set("updated_at", stamp(now))
        write.add("version", 1).remove("pending_op")
        if backup_slots_freed:
            write.count("backup_count", -backup_slots_freed)
        set_failure(write, failure)
        if gone:
            write.set(schema.TTL_ATTRIBUTE, schema.expires_epoch(now)).remove("gsi2pk", "gsi2sk")
        write.set_all(fields or {}).when_equal("pending_op", operation_id)
        return self.db.tx_update(
            schema.cluster_pk(workload.cluster_id),
            schema.workload_sk(workload.id),
            write,
            on_fail=lambda _: Conflict("already finished"),
        )


def refuse_database(old: Item | None) -> CorralError:
    """Why a tenant database was refused its container: busy, full, or changed."""
    if old is not None and not old.get("pending_op"):
        held, allowed = int(old.get("db_count", 0)), int(old.get("res_databases", 0))
        if held >= allowed:
            return CapacityExceeded(
                f"The container holds {held} of its {allowed} databases; resize its "
                "databases allocation (within the cluster's limit) to add one."
            )
    return refuse_busy(old)


def give_database(cluster_id: str, workload_id: str, db: Dynamo) -> TxEntry:
    write = Expression().add("db_count", -1).when_at_least("db_count", 1)
    return db.tx_update(schema.cluster_pk(cluster_id), schema.workload_sk(workload_id), write)


def _lease(workload: Workload, expires_at: datetime, now: datetime) -> Expression:
    """Move a workload's expiry (and its place in the expiry index), unless it is being
    deleted or gone."""
    write = Expression().set("expires_at", stamp(expires_at))
    write.set_all(expiry_keys(workload.id, expires_at))
    write.set("updated_at", stamp(now)).add("version", 1)
    return write.when_exists().when_not_in("status", (s.value for s in GONE))
