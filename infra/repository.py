"""The table repository: domain verbs over the single table.

Invariants carried by conditions, never by read-then-write:
- a cluster's and a host's `used_*` counters equal the sum of their live workloads;
  growth is checked as `used <= limit - growth` against the limit that was read;
- a workload has at most one operation in flight (`pending_op`);
- every workload update checks and bumps `version`.
"""

from __future__ import annotations

from datetime import datetime

from infra import codec, counters, schema
from infra.codec import Item
from infra.dynamo import Dynamo, TxEntry
from infra.env_records import EnvRecords
from infra.fleet_records import FleetRecords
from infra.health_records import HealthRecords
from infra.leases import lease_update
from shared.capacity import Resources
from shared.clock import iso, sortable, stamp
from shared.errors import (
    Conflict,
    CorralError,
    KeyLimitReached,
    NotFound,
)
from shared.models import (
    MAX_KEYS_PER_CLUSTER,
    ApiKey,
    Cluster,
    Egg,
    Host,
    Operation,
    Workload,
)
from shared.states import OperationStatus, WorkloadStatus, operation_in_flight


class Repository(FleetRecords, HealthRecords, EnvRecords):
    def __init__(self, dynamo: Dynamo) -> None:
        self.db = dynamo

    # -- reads ----------------------------------------------------------------

    def get_cluster(self, cluster_id: str) -> Cluster:
        item = self.db.get(schema.cluster_pk(cluster_id), schema.META)
        if item is None:
            raise NotFound("Cluster not found.")
        return codec.cluster_from(item)

    def list_clusters(self) -> list[Cluster]:
        return [
            codec.cluster_from(i) for i in self.db.query(schema.ALL_CLUSTERS, index=schema.GSI1)
        ]

    def get_egg(self, egg_id: str) -> Egg:
        item = self.db.get(schema.egg_pk(egg_id), schema.META)
        if item is None:
            raise NotFound("Egg not found.")
        return codec.egg_from(item)

    def list_eggs(self) -> list[Egg]:
        return [codec.egg_from(i) for i in self.db.query(schema.ALL_EGGS, index=schema.GSI1)]

    def get_host(self, host_id: str) -> Host:
        item = self.db.get(schema.host_pk(host_id), schema.META)
        if item is None:
            raise NotFound("Host not found.")
        return codec.host_from(item)

    def list_hosts(self) -> list[Host]:
        return [codec.host_from(i) for i in self.db.query(schema.ALL_HOSTS, index=schema.GSI1)]

    def get_workload(self, cluster_id: str, workload_id: str) -> Workload:
        item = self.db.get(schema.cluster_pk(cluster_id), schema.workload_sk(workload_id))
        if item is None:
            raise NotFound("Container not found.")
        return codec.workload_from(item)

    def list_workloads(self, cluster_id: str) -> list[Workload]:
        items = self.db.query(schema.cluster_pk(cluster_id), sk_prefix="WORKLOAD#", consistent=True)
        return [codec.workload_from(i) for i in items]

    def list_host_workloads(self, host_id: str) -> list[Workload]:
        items = self.db.query(schema.host_pk(host_id), sk_prefix="WORKLOAD#", index=schema.GSI1)
        return [codec.workload_from(i) for i in items]

    def get_operation(self, cluster_id: str, operation_id: str) -> Operation:
        item = self.db.get(schema.cluster_pk(cluster_id), schema.operation_sk(operation_id))
        if item is None:
            raise NotFound("Operation not found.")
        return codec.operation_from(item)

    def find_key(self, key_hash: str) -> ApiKey | None:
        item = self.db.get(schema.key_pk(key_hash), schema.META, consistent=False)
        return codec.key_from(item) if item else None

    def list_keys(self, cluster_id: str | None) -> list[ApiKey]:
        items = self.db.query(schema.keys_of(cluster_id), index=schema.GSI1)
        return [codec.key_from(i) for i in items]

    # -- simple writes ----------------------------------------------------------

    def create_cluster(self, cluster: Cluster) -> None:
        self.db.put_new(codec.cluster_item(cluster), Conflict("Cluster already exists."))

    def create_egg(self, egg: Egg) -> None:
        self.db.put_new(codec.egg_item(egg), Conflict("Egg already exists."))

    def create_host(self, host: Host) -> None:
        self.db.put_new(codec.host_item(host), Conflict("Host already exists."))

    def create_key(self, key: ApiKey, now: datetime) -> None:
        """Store a key; a cluster key also takes one of the cluster's key slots."""
        put = self.db.tx_put(codec.key_item(key), condition="attribute_not_exists(pk)")
        if key.cluster_id is None:
            self.db.transact([put])
            return

        def refuse(old: Item | None) -> CorralError:
            if old is None:
                return NotFound("Cluster not found.")
            return KeyLimitReached(
                f"Cluster already has the maximum of {MAX_KEYS_PER_CLUSTER} API keys."
            )

        slot = self.db.tx_update(
            schema.cluster_pk(key.cluster_id),
            schema.META,
            "SET key_count = key_count + :one, updated_at = :now",
            {":one": 1, ":max": MAX_KEYS_PER_CLUSTER, ":now": iso(now)},
            condition="attribute_exists(pk) AND key_count < :max",
            on_fail=refuse,
        )
        self.db.transact([put, slot])

    def touch_key(self, key_hash: str, now: datetime) -> None:
        self.db.update(
            schema.key_pk(key_hash),
            schema.META,
            "SET last_used_at = :now",
            {":now": stamp(now)},
            condition="attribute_exists(pk)",
            on_fail=lambda _: NotFound("Key not found."),
        )

    # -- workloads: reservation and changes ------------------------------------

    def create_workload(
        self, workload: Workload, operation: Operation, cluster: Cluster, host: Host
    ) -> None:
        """Write the workload and its first operation, and raise the cluster's and the
        host's counters, in one transaction."""
        now = iso(workload.created_at)
        self.db.transact(
            [
                self.db.tx_put(
                    codec.workload_item(workload),
                    condition="attribute_not_exists(pk)",
                    on_fail=lambda _: Conflict("Container already exists."),
                ),
                self.db.tx_put(
                    codec.operation_item(operation), condition="attribute_not_exists(pk)"
                ),
                counters.cluster_counters(self.db, cluster, workload.resources, 1, now),
                counters.host_counters(self.db, host, workload.resources, 1, now),
            ]
        )

    def begin_operation(
        self,
        workload: Workload,
        operation: Operation,
        *,
        set_fields: Item | None = None,
        resources: Resources | None = None,
        cluster: Cluster | None = None,
        host: Host | None = None,
    ) -> None:
        """Record `operation` as the workload's one change in flight.

        With `resources`, the workload's desired resources change now and the
        counters move by the difference (growth checked against the limits)."""
        now = iso(operation.created_at)
        values: Item = {":op": operation.id, ":v": workload.version, ":one": 1, ":now": now}
        sets = [
            "pending_op = :op",
            "last_op = :op",
            "version = version + :one",
            "updated_at = :now",
        ]
        for name, value in (set_fields or {}).items():
            sets.append(f"#f_{name} = :f_{name}")
            values[f":f_{name}"] = value
        names = {f"#f_{name}": name for name in (set_fields or {})} or None
        entries: list[TxEntry] = []
        if resources is not None:
            for name, value in resources.items():
                sets.append(f"res_{name} = :r_{name}")
                values[f":r_{name}"] = value
            delta = resources - workload.resources
            if cluster is None or host is None:
                raise ValueError("resizing needs the cluster and the host as read")
            if any(v != 0 for _, v in delta.items()):
                entries.append(counters.cluster_counters(self.db, cluster, delta, 0, now))
                entries.append(counters.host_counters(self.db, host, delta, 0, now))
        workload_entry = self.db.tx_update(
            schema.cluster_pk(workload.cluster_id),
            schema.workload_sk(workload.id),
            "SET " + ", ".join(sets),
            values,
            names=names,
            condition="version = :v AND attribute_not_exists(pending_op)",
            on_fail=_busy,
        )
        self.db.transact(
            [
                workload_entry,
                self.db.tx_put(
                    codec.operation_item(operation), condition="attribute_not_exists(pk)"
                ),
                *entries,
            ]
        )

    def mark_running(self, operation: Operation, now: datetime) -> Operation:
        item = self.db.update(
            schema.cluster_pk(operation.cluster_id),
            schema.operation_sk(operation.id),
            "SET #s = :running, started_at = if_not_exists(started_at, :now), updated_at = :now",
            {":running": OperationStatus.RUNNING.value, ":queued": "queued", ":now": iso(now)},
            names={"#s": "status"},
            condition="#s IN (:queued, :running)",
            on_fail=lambda _: Conflict("Operation already finished."),
        )
        return codec.operation_from(item)

    def finish_operation(
        self,
        operation: Operation,
        workload: Workload,
        *,
        status: WorkloadStatus,
        error: str | None,
        now: datetime,
        workload_fields: Item | None = None,
        release: bool = False,
        host_exists: bool = True,
    ) -> bool:
        """Close `operation` and record the workload's new status in one transaction.

        With `release` the workload is gone: its resources go back to its cluster and,
        unless the host record was deleted (`host_exists=False`), to its host; it leaves
        the expiry index and the table drops it after the retention period.
        Returns False when the operation had been closed already (a re-run)."""
        at = stamp(now)
        values: Item = {":op": operation.id, ":st": status.value, ":now": at, ":one": 1}
        sets = ["#s = :st", "updated_at = :now", "version = version + :one"]
        removes = ["pending_op"]
        if error:
            sets.append("#e = :err")
            values[":err"] = error
        else:
            removes.append("#e")
        if release:
            sets.append("#ttl = :ttl")
            values[":ttl"] = schema.expires_epoch(now)
            removes += ["gsi2pk", "gsi2sk"]
        for name, value in (workload_fields or {}).items():
            sets.append(f"#f_{name} = :f_{name}")
            values[f":f_{name}"] = value
        names = {"#s": "status", "#e": "error"} | {f"#f_{n}": n for n in workload_fields or {}}
        if release:
            names["#ttl"] = schema.TTL_ATTRIBUTE
        entries = [
            self.db.tx_update(
                schema.cluster_pk(workload.cluster_id),
                schema.workload_sk(workload.id),
                "SET " + ", ".join(sets) + " REMOVE " + ", ".join(removes),
                values,
                names=names,
                condition="pending_op = :op",
                on_fail=lambda _: Conflict("already finished"),
            ),
            self._close_operation(operation, error, now),
        ]
        if release:
            entries.append(
                counters.release(
                    self.db, schema.cluster_pk(workload.cluster_id), workload, "container_count", at
                )
            )
            if host_exists:
                entries.append(
                    counters.release(
                        self.db, schema.host_pk(workload.host_id), workload, "workload_count", at
                    )
                )
        try:
            self.db.transact(entries)
        except Conflict:
            return False
        return True

    def fail_queued_operation(self, operation: Operation, error: str, now: datetime) -> None:
        """Close an operation whose workload is gone (nothing left to converge)."""
        self.db.transact([self._close_operation(operation, error, now)])

    def _close_operation(self, operation: Operation, error: str | None, now: datetime) -> TxEntry:
        """The operation's final status; it leaves the pending index and ages out."""
        done = OperationStatus.FAILED if error else OperationStatus.SUCCEEDED
        values: Item = {":done": done.value, ":now": stamp(now), ":ttl": schema.expires_epoch(now)}
        sets = ["#s = :done", "updated_at = :now", "finished_at = :now", "#ttl = :ttl"]
        if error:
            sets.append("#e = :err")
            values[":err"] = error
        return self.db.tx_update(
            schema.cluster_pk(operation.cluster_id),
            schema.operation_sk(operation.id),
            "SET " + ", ".join(sets) + " REMOVE gsi2pk, gsi2sk",
            values,
            names={
                "#s": "status",
                "#ttl": schema.TTL_ATTRIBUTE,
                **({"#e": "error"} if error else {}),
            },
        )

    # -- lifetimes ----------------------------------------------------------------

    def set_lease(self, workload: Workload, expires_at: datetime, now: datetime) -> Workload:
        """Move the workload's expiry; refused once it is being deleted or gone."""
        lease = lease_update(workload, expires_at, now)
        item = self.db.update(
            schema.cluster_pk(workload.cluster_id), schema.workload_sk(workload.id), **lease
        )
        return codec.workload_from(item)

    def due_workloads(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        """(cluster id, workload id) of workloads whose expiry is at or before `now`:
        reads only the due entries of the expiry index (one query per shard)."""
        due: list[tuple[str, str]] = []
        for shard in range(schema.SHARDS):
            for item in self.db.query(
                schema.expiry_pk(shard),
                sk_at_most=f"{sortable(now)}~",
                index=schema.GSI2,
                page_size=limit,
            ):
                due.append((item["pk"].split("#", 1)[1], item["sk"].split("#", 1)[1]))
                if len(due) >= limit:
                    return due
        return due

    def pending_operations(self, older_than: datetime, limit: int) -> list[tuple[str, str]]:
        """(cluster id, operation id) of unfinished operations created before `older_than`."""
        found: list[tuple[str, str]] = []
        for shard in range(schema.SHARDS):
            for item in self.db.query(
                schema.pending_pk(shard),
                sk_at_most=sortable(older_than),
                index=schema.GSI2,
                page_size=limit,
            ):
                found.append((item["pk"].split("#", 1)[1], item["sk"].split("#", 1)[1]))
                if len(found) >= limit:
                    return found
        return found


def _busy(old: Item | None) -> CorralError:
    if old is None:
        return NotFound("Container not found.")
    if old.get("pending_op"):
        return operation_in_flight(str(old["pending_op"]))
    return Conflict("The container changed while the request was processed; retry.")
