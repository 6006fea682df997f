"""The repository: one store per aggregate over the single table, and the transactions
that span aggregates (each all-or-nothing, built from the stores' entries). Each
transaction appends the events of the changes it makes (shared.changes) to their
cluster's log in the same commit: `self.db.transact(entries, events=...)`.

Invariants carried by conditions, never by read-then-write:
- a cluster's and a host's `used_*` counters equal the sum of their live workloads;
  growth is checked as `used <= limit - growth` against the limit that was read;
- a workload has at most one operation in flight (`pending_op`);
- every workload update checks and bumps `version`.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from infra.table import schema
from infra.table.api_keys import AlreadyRevoked, ApiKeyStore
from infra.table.attributes import Item
from infra.table.backups import BackupStore
from infra.table.clusters import ClusterStore, cluster_from
from infra.table.databases import DatabaseHostStore, DatabaseStore
from infra.table.dynamo import MAX_TRANSACTION_ITEMS, Dynamo, TxEntry
from infra.table.eggs import EggStore, egg_from
from infra.table.envs import EnvStore, refuse_vm_change
from infra.table.health import HealthStore
from infra.table.hosts import HostStore, host_from
from infra.table.operations import OperationStore, operation_from
from infra.table.placement import Draw, HostMove, PlacementStore, moved, status_change
from infra.table.platform import PlatformStore
from infra.table.ports import PortStore
from infra.table.webhooks import WebhookStore
from infra.table.workloads import (
    WorkloadStore,
    give_database,
    refuse_busy,
    refuse_database,
    workload_from,
)
from shared.backups import Backup, BackupStatus
from shared.capacity import Resources
from shared.changes import (
    key_change,
    operation_change,
    record_change,
    workload_change,
    workload_fields_change,
    workload_state,
)
from shared.databases import DatabaseHost, ManagedDatabase
from shared.envs import Env
from shared.errors import CapacityExceeded, Conflict, CorralError, Failure, NotFound
from shared.events import Change
from shared.models import ApiKey, Cluster, Egg, Host, Operation, Workload
from shared.states import OperationStatus, WorkloadStatus


@dataclass(frozen=True)
class PortChange:
    """The host ports a resize of `ports` takes and gives back."""

    taken: tuple[int, ...] = ()
    freed: tuple[int, ...] = ()


def _placed(workload: Workload) -> HostMove:
    """What placing `workload` moves on its host."""
    return HostMove(workload.resources, 1) + status_change(None, workload.status)


def no_backup_slot_message(slots: int) -> str:
    return (
        f"No backup slot left on this container (backups: {slots}); delete a backup "
        "or give the container more backups."
    )


@dataclass(frozen=True)
class CreateReads:
    cluster: Cluster
    egg: Egg | None
    draw: Draw  # what the batch read of the placement summary
    summary: dict[tuple[str, str], Item]  # the items of `draw` that exist
    # Held by this process from an earlier create (`CreateReadsCache`), not read now.
    held: bool = False

    def hosts(self, placement: PlacementStore) -> list[Host]:
        """The hosts placement chooses among (`PlacementStore.sample`)."""
        return placement.sample(self.draw, self.summary)


# How long a process creates from what an earlier create read (`CreateReadsCache`),
# and for how many (cluster, egg) pairs at most (past that it forgets them all).
CREATE_READS_MAX_AGE_S = 1.0
HELD_CREATE_READS = 1024


class CreateReadsCache:
    """What this process's creates read last, for the next creates of the following
    `CREATE_READS_MAX_AGE_S`: the cluster and the egg by (cluster id, egg id), and the
    placement summary's drawn shards (one sample for every cluster: the summary is
    the fleet's), kept up to date with this process's own placements. A create made
    from them reads nothing before its transaction, whose conditions check what
    matters against the table as it is (the cluster's status, plan, limits and egg
    allow-list; the host's status and capacity): what those refuse, and whatever a
    create refuses on reads it held, is tried again on fresh reads (services.workloads).
    An egg's image or settings changed in another process reach this process's
    creates within that second; in this one, at once (`forget_eggs`). Thread-safe."""

    def __init__(self) -> None:
        self._records: dict[tuple[str, str], tuple[Cluster, Egg | None, float]] = {}
        self._sample: tuple[Draw, dict[tuple[str, str], Item], float] | None = None
        self._lock = threading.Lock()

    def held(self, cluster_id: str, egg_id: str) -> CreateReads | None:
        """What a create of this egg in this cluster may be decided on, unless this
        process has not read it in the last `CREATE_READS_MAX_AGE_S`."""
        records, sample = self._records.get((cluster_id, egg_id)), self._sample
        if records is None or sample is None:
            return None
        cluster, egg, read_at = records
        draw, summary, sampled_at = sample
        if time.monotonic() - min(read_at, sampled_at) > CREATE_READS_MAX_AGE_S:
            return None
        return CreateReads(cluster, egg, draw, summary, held=True)

    def keep(self, cluster_id: str, egg_id: str, reads: CreateReads) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._records) >= HELD_CREATE_READS:
                self._records.clear()
            self._records[(cluster_id, egg_id)] = (reads.cluster, reads.egg, now)
            # a sample that needs a further read (of the OCCUPIED item's shards) is not held
            self._sample = (reads.draw, reads.summary, now) if reads.draw.drawn else None

    def placed(self, moves: Mapping[str, HostMove]) -> None:
        """This process placed workloads: its held summary counts them."""
        with self._lock:
            if self._sample is not None:
                draw, summary, sampled_at = self._sample
                self._sample = (draw, moved(summary, moves), sampled_at)

    def forget(self, cluster_id: str, egg_id: str) -> None:
        with self._lock:
            self._records.pop((cluster_id, egg_id), None)
            self._sample = None

    def forget_all(self) -> None:
        with self._lock:
            self._records.clear()
            self._sample = None

    def forget_eggs(self) -> None:
        """An egg changed in this process: its next creates read the eggs again."""
        with self._lock:
            self._records.clear()


@dataclass(frozen=True)
class JobRecords:
    """What an operation's job reads first (`Repository.job_records`)."""

    operation: Operation | None
    workload: Workload | None
    host: Host | None = None
    egg: Egg | None = None
    host_and_egg: tuple[str, str] | None = None  # the ids `host` and `egg` were read by

    def host_and_egg_of(self, workload: Workload) -> tuple[Host | None, Egg | None] | None:
        """The host and egg of `workload`, when they are those read (None: not read)."""
        if self.host_and_egg != (workload.host_id, workload.egg_id):
            return None
        return self.host, self.egg


class Repository:
    def __init__(self, db: Dynamo) -> None:
        self.db = db
        self.clusters = ClusterStore(db)
        self.placement = PlacementStore(db)
        self.hosts = HostStore(db, self.placement)
        self.create_cache = CreateReadsCache()
        self.eggs = EggStore(db, on_change=self.create_cache.forget_eggs)
        self.keys = ApiKeyStore(db)
        self.workloads = WorkloadStore(db)
        self.operations = OperationStore(db)
        self.envs = EnvStore(db)
        self.health = HealthStore(db)
        self.platform = PlatformStore(db)
        self.database_hosts = DatabaseHostStore(db)
        self.databases = DatabaseStore(db)
        self.ports = PortStore(db)
        self.backups = BackupStore(db)
        self.webhooks = WebhookStore(db)

    # -- API keys and the cluster's key slots --------------------------------------

    def create_key(self, key: ApiKey, now: datetime) -> None:
        """Store a key; a cluster key also takes one of the cluster's key slots."""
        entries = [self.keys.put_new(key)]
        if key.cluster_id is not None:
            entries.append(self.clusters.take_key_slot(key.cluster_id, now))
        self.db.transact(entries, events=[key_change("created", key)])

    def revoke_key(self, key: ApiKey, now: datetime) -> bool:
        """Mark the key revoked and give its slot back, in one transaction. Idempotent:
        False (and nothing written) when the key was revoked already, so a retried or
        parallel revocation frees the slot once."""
        entries = [self.keys.revoke(key, now)]
        if key.cluster_id is not None:
            entries.append(self.clusters.give_key_slot(key.cluster_id, now))
        for _ in range(3):
            try:
                self.db.transact(entries, events=[key_change("revoked", key)])
            except AlreadyRevoked:
                return False
            except Conflict:
                continue  # a parallel revocation was committing: look again
            return True
        raise Conflict("The key kept changing; retry.")

    # -- workloads, their operations and the counters they move --------------------

    def create_reads(self, cluster_id: str, egg_id: str, *, held: bool = True) -> CreateReads:
        """What creating a workload reads first, in one round trip: the cluster, the
        egg (None when there is no such egg) and the placement summary's shards drawn
        for it (`PlacementStore.draw`; the summary's `OCCUPIED` item instead, when this
        process has to read it again). What this process read for a create in the last
        `CREATE_READS_MAX_AGE_S` instead, unless `held` is False (`CreateReadsCache`)."""
        if held:
            kept = self.create_cache.held(cluster_id, egg_id)
            if kept is not None:
                return kept
        cluster_key = (schema.cluster_pk(cluster_id), schema.META)
        egg_key = (schema.egg_pk(egg_id), schema.META)
        draw = self.placement.draw()
        found = self.db.get_many([cluster_key, egg_key, *draw.keys])
        if cluster_key not in found:
            raise NotFound("Cluster not found.")
        egg = found.get(egg_key)
        reads = CreateReads(
            cluster_from(found[cluster_key]),
            egg_from(egg) if egg is not None else None,
            draw,
            {key: found[key] for key in draw.keys if key in found},
        )
        self.create_cache.keep(cluster_id, egg_id, reads)
        return reads

    def job_records(
        self,
        cluster_id: str,
        operation_id: str,
        workload_id: str | None,
        host_and_egg: tuple[str, str] | None = None,
    ) -> JobRecords:
        """An operation and, with its id, its workload and, with theirs, the workload's
        host and egg, in one round trip (what a job reads first); None for one that
        does not exist."""
        op_key = (schema.cluster_pk(cluster_id), schema.operation_sk(operation_id))
        if workload_id is None:
            item = self.db.get(*op_key)
            return JobRecords(operation_from(item) if item is not None else None, None)
        workload_key = (schema.cluster_pk(cluster_id), schema.workload_sk(workload_id))
        keys = [op_key, workload_key]
        if host_and_egg is not None:
            host_key = (schema.host_pk(host_and_egg[0]), schema.META)
            egg_key = (schema.egg_pk(host_and_egg[1]), schema.META)
            keys += [host_key, egg_key]
        found = self.db.get_many(keys)
        op, workload = found.get(op_key), found.get(workload_key)
        records = JobRecords(
            operation_from(op) if op is not None else None,
            workload_from(workload) if workload is not None else None,
        )
        if host_and_egg is None:
            return records
        host, egg = found.get(host_key), found.get(egg_key)
        return replace(
            records,
            host=host_from(host) if host is not None else None,
            egg=egg_from(egg) if egg is not None else None,
            host_and_egg=host_and_egg,
        )

    def host_and_egg(self, host_id: str, egg_id: str) -> tuple[Host | None, Egg | None]:
        """A host and an egg, in one round trip (what a job reads after its workload);
        None for one that does not exist."""
        host_key = (schema.host_pk(host_id), schema.META)
        egg_key = (schema.egg_pk(egg_id), schema.META)
        found = self.db.get_many([host_key, egg_key])
        host, egg = found.get(host_key), found.get(egg_key)
        return (
            host_from(host) if host is not None else None,
            egg_from(egg) if egg is not None else None,
        )

    def change_reads(self, cluster_id: str, workload_id: str) -> tuple[Workload, Cluster]:
        """What a change to a workload (an update, a power signal, a delete) reads first,
        in one round trip, strongly consistent: the workload and its cluster."""
        workload_key = (schema.cluster_pk(cluster_id), schema.workload_sk(workload_id))
        cluster_key = (schema.cluster_pk(cluster_id), schema.META)
        found = self.db.get_many([workload_key, cluster_key])
        if workload_key not in found:
            raise NotFound("Container not found.")
        if cluster_key not in found:
            raise NotFound("Cluster not found.")
        return workload_from(found[workload_key]), cluster_from(found[cluster_key])

    def eggs_and_host(
        self, egg_ids: Sequence[str], host_id: str | None
    ) -> tuple[dict[str, Egg], Host | None]:
        """Eggs by id (those that exist) and, with its id, a host, in one round trip,
        strongly consistent (what an update reads after its workload). NotFound for a
        host that does not exist."""
        egg_keys = {(schema.egg_pk(egg_id), schema.META): egg_id for egg_id in egg_ids}
        host_key = (schema.host_pk(host_id), schema.META) if host_id is not None else None
        found = self.db.get_many([*egg_keys, *([host_key] if host_key else [])])
        eggs = {egg_id: egg_from(found[key]) for key, egg_id in egg_keys.items() if key in found}
        if host_key is None:
            return eggs, None
        if host_key not in found:
            raise NotFound("Host not found.")
        return eggs, host_from(found[host_key])

    def create_workload(
        self, workload: Workload, operation: Operation, cluster: Cluster, host: Host
    ) -> None:
        """Write the workload and its first operation, take its allocations' ports (each
        only if nobody holds it: `PortTaken` otherwise), and raise the cluster's and the
        host's counters, in one transaction."""
        self.db.transact(
            self.create_workload_entries(workload, operation, cluster, host),
            events=[
                workload_change("created", workload, after=workload_state(workload)),
                operation_change(operation, "created"),
            ],
        )
        self.create_cache.placed({host.id: _placed(workload)})

    def create_workload_entries(
        self, workload: Workload, operation: Operation, cluster: Cluster, host: Host
    ) -> list[TxEntry]:
        """The entries of `create_workload`'s transaction (the benchmark's floor sends
        the same request)."""
        now = workload.created_at
        return [
            self.workloads.put_new(workload, Conflict("Container already exists.")),
            self.operations.put_new(operation),
            self.clusters.reserve(cluster, workload.resources, 1, now, egg_id=workload.egg_id),
            self.hosts.reserve(host, workload.resources, 1, now),
            *self._counted(workload.cluster_id, {host.id: _placed(workload)}),
            *self.ports.hold(workload, (a.port for a in workload.allocations)),
        ]

    def begin_operation(
        self,
        workload: Workload,
        operation: Operation,
        *,
        set_fields: Item | None = None,
        resources: Resources | None = None,
        cluster: Cluster | None = None,
        host: Host | None = None,
        also: Sequence[TxEntry] = (),
        ports: PortChange | None = None,
    ) -> None:
        """Record `operation` as the workload's one change in flight (and `also`, the
        entries of what changes with it, in the same transaction).

        With `resources`, the workload's desired resources change now and the
        counters move by the difference (growth checked against the limits); with
        `ports`, the ports it takes and gives back move in the same transaction."""
        now = operation.created_at
        events = [operation_change(operation, "created")]
        if set_fields or resources is not None:
            changed = {k: v for k, v in (set_fields or {}).items() if k != "allocations"}
            if resources is not None:
                changed["resources"] = resources.to_api()
            events.insert(0, workload_fields_change(workload, changed))
        counters: list[TxEntry] = []
        entering = (set_fields or {}).get("status")
        summary = status_change(
            workload.status, WorkloadStatus(entering) if entering else workload.status
        )
        if ports is not None:
            counters += self.ports.hold(workload, ports.taken)
            counters += self.ports.free(workload.host_id, ports.freed)
        if resources is not None:
            delta = resources - workload.resources
            if cluster is None or host is None:
                raise ValueError("resizing needs the cluster and the host as read")
            if any(v != 0 for _, v in delta.items()):
                counters.append(self.clusters.reserve(cluster, delta, 0, now))
                counters.append(self.hosts.reserve(host, delta, 0, now))
                summary += HostMove(resources=delta)
        counters += self._counted(workload.cluster_id, {workload.host_id: summary})
        self.db.transact(
            [
                self.workloads.begin(
                    workload, operation.id, now, fields=set_fields, resources=resources
                ),
                self.operations.put_new(operation),
                *counters,
                *also,
            ],
            events=events,
        )

    def finish_operation(
        self,
        operation: Operation,
        workload: Workload,
        *,
        status: WorkloadStatus,
        error: Failure | None,
        now: datetime,
        workload_fields: Item | None = None,
        release: bool = False,
        host_exists: bool = True,
        also: Sequence[TxEntry] = (),
        backup_slots_freed: int = 0,
    ) -> bool:
        """Close `operation` and record the workload's new status in one transaction.

        With `release` the workload is gone: its resources go back to its cluster and,
        unless the host record was deleted (`host_exists=False`), to its host; it leaves
        the expiry index and the table drops it after the retention period. `also`: the
        entries that close what the operation changed besides (a backup's record), and
        `backup_slots_freed` the workload's backup slots it gave back.
        Returns False when the operation had been closed already (a re-run)."""
        entries = [
            self.workloads.finish(
                workload,
                operation.id,
                status,
                error,
                now,
                fields=workload_fields,
                gone=release,
                backup_slots_freed=backup_slots_freed,
            ),
            self.operations.close(operation, error, now),
            *also,
        ]
        # a deleted host's summary keeps only its workloads by status, until they go
        summary = status_change(workload.status, status)
        if release:
            entries.append(self.clusters.release(workload.cluster_id, workload.resources, now))
            if host_exists:
                entries.append(self.hosts.release(workload.host_id, workload.resources, now))
                summary += HostMove(Resources() - workload.resources, -1)
            entries += self.ports.free(workload.host_id, (a.port for a in workload.allocations))
        entries += self._counted(workload.cluster_id, {workload.host_id: summary})
        closed = OperationStatus.FAILED if error is not None else OperationStatus.SUCCEEDED
        events = [operation_change(replace(operation, status=closed, failure=error))]
        if release:
            events.append(workload_change("deleted", workload, after={"status": "deleted"}))
        elif status != workload.status or error is not None:
            events.append(
                workload_change(
                    status.value,
                    workload,
                    before={"status": workload.status.value},
                    after={"status": status.value},
                )
            )
        try:
            self.db.transact(entries, events=events)
        except Conflict:
            return False
        return True

    # -- managed databases and the counters they move ----------------------------------

    def create_database(
        self, database: ManagedDatabase, host: DatabaseHost, cluster: Cluster, now: datetime
    ) -> None:
        """Write the record and its name's guard, take one of the database host's slots
        and one of the cluster's `databases`, in one transaction."""
        self.db.transact(
            [
                *self.databases.put_new(database),
                self.database_hosts.take_slot(host, now),
                self.clusters.reserve(cluster, Resources(databases=1), 0, now),
            ],
            events=[_database_change("created", database)],
        )

    def create_tenant_database(
        self,
        database: ManagedDatabase,
        host: DatabaseHost,
        workload: Workload,
        operation: Operation,
    ) -> None:
        """Write a container's database, its name's guard and the container's operation
        that makes it and injects it; take one of the database host's slots and one of
        the container's `databases`, in one transaction."""
        now = database.created_at
        self.db.transact(
            [
                *self.databases.put_new(database),
                self.database_hosts.take_slot(host, now),
                self.workloads.begin(
                    workload,
                    operation.id,
                    now,
                    fields={"databases": [*workload.databases, database.id]},
                    on_fail=refuse_database,
                    take_database=True,
                ),
                self.operations.put_new(operation),
            ],
            events=[_database_change("created", database), operation_change(operation, "created")],
        )

    # -- backups -------------------------------------------------------------------

    def create_backup(self, workload: Workload, backup: Backup, operation: Operation) -> None:
        """Write the backup and its operation, and take one of the workload's backup
        slots with the workload's one change in flight, in one transaction."""

        def refuse(old: Item | None) -> CorralError:
            if old is not None and not old.get("pending_op"):
                held, slots = int(old.get("backup_count", 0)), int(old.get("res_backups", 0))
                if held >= slots:
                    return CapacityExceeded(no_backup_slot_message(slots))
            return refuse_busy(old)

        self.db.transact(
            [
                self.workloads.begin(
                    workload,
                    operation.id,
                    operation.created_at,
                    takes_backup_slot=True,
                    on_fail=refuse,
                ),
                self.backups.put_new(backup),
                self.operations.put_new(operation),
            ],
            events=[_backup_change("created", backup), operation_change(operation, "created")],
        )

    def begin_backup_operation(
        self,
        workload: Workload,
        backup: Backup,
        operation: Operation,
        status: BackupStatus,
        allowed_from: Sequence[BackupStatus],
        action: str,
    ) -> None:
        """Record `operation` (a restore or a delete of `backup`) as the workload's one
        change in flight and move the backup into `status`, in one transaction."""
        now = operation.created_at
        self.db.transact(
            [
                self.workloads.begin(workload, operation.id, now),
                self.backups.begin(
                    backup, status, operation.id, now, allowed_from=allowed_from, action=action
                ),
                self.operations.put_new(operation),
            ],
            events=[
                _backup_change(status.value, backup, {"operation_id": operation.id}),
                operation_change(operation, "created"),
            ],
        )

    def remove_database(self, database: ManagedDatabase, now: datetime) -> bool:
        """Drop the record (it must be `deleting`) and give back what it held: a slot on
        its host, and one `databases` of its container (a tenant's) or of its cluster (an
        operator's). False when a previous run removed it already."""
        held_by = (
            give_database(database.cluster_id, database.owner_id, self.db)
            if database.owner_id
            else self.clusters.release_resources(database.cluster_id, Resources(databases=1), now)
        )
        entries = [
            *self.databases.remove(database),
            self.database_hosts.give_slot(database.host_id, now),
            held_by,
        ]
        try:
            self.db.transact(entries, events=[_database_change("deleted", database)])
        except Conflict:
            return False
        return True

    # -- environments and their VMs --------------------------------------------------

    def create_env(
        self,
        env: Env,
        vms: Sequence[tuple[Workload, Operation]],
        cluster: Cluster,
        hosts: Mapping[str, Host],
    ) -> None:
        """Write the env, every VM and its provision operation, and raise the cluster's
        counters and each host's (once per host, by the sum of its VMs) in one
        transaction: all of it or nothing."""
        now = env.created_at
        entries: list[TxEntry] = [self.envs.put_new(env)]
        total = Resources()
        per_host: dict[str, HostMove] = {}
        for workload, operation in vms:
            entries.append(self.workloads.put_new(workload, Conflict("A VM id is taken; retry.")))
            entries.append(self.operations.put_new(operation))
            total = total + workload.resources
            per_host[workload.host_id] = per_host.get(workload.host_id, HostMove()) + _placed(
                workload
            )
        entries.append(self.clusters.reserve(cluster, total, len(vms), now))
        for host_id, move in per_host.items():
            entries.append(self.hosts.reserve(hosts[host_id], move.resources, move.workloads, now))
        # One event for the env (a transaction holds at most 100 items; a VM is 2).
        after = {"owner": env.owner, "vm_ids": [w.id for w, _ in vms]}
        self._transact_with_summary(
            entries, self._counted(cluster.id, per_host), [_env_change("created", env, after)]
        )

    def recount_statuses(self, host_id: str) -> bool:
        """Set the host's workloads-by-status counters (the placement summary's, which
        `/status` and `/stats` read) from its workloads: for a host whose workloads
        predate the counters. The counters are read first, then the workloads (listed
        by the host index, which may lag, then each read strongly consistent), and the
        counts written only if no counter moved meanwhile and the host holds as many
        workloads as were read. False when something changed: run it again."""
        as_read = self.placement.statuses_as_read(host_id)
        listed = self.workloads.on_host(host_id)
        keys = [(schema.cluster_pk(w.cluster_id), schema.workload_sk(w.id)) for w in listed]
        live: Counter[str] = Counter()
        for item in self.db.get_many(keys).values():
            workload = workload_from(item)
            if not workload.status.is_gone:
                live[workload.status.value] += 1
        holds = self.hosts.holds(host_id, sum(live.values()))
        return self.placement.recount(host_id, as_read, live, holds)

    def _counted(self, cluster_id: str, per_host: Mapping[str, HostMove]) -> list[TxEntry]:
        """The entries that count what a change of workloads moves besides their own
        records and the hosts' and the cluster's capacity counters: the placement
        summary (per host: its counters, its workloads by status) and the cluster's
        workload counts. They go in the change's own transaction."""
        return [
            *self.placement.moves(per_host),
            *self.clusters.count_moves(cluster_id, per_host),
        ]

    def _transact_with_summary(
        self, entries: list[TxEntry], summary: list[TxEntry], events: list[Change]
    ) -> None:
        """Commit `entries` with the placement summary's moves of the same hosts, in one
        transaction when they fit in one. The widest env does not (its 32 hosts may
        touch every shard): its summary moves follow the transaction, and a crash
        between the two leaves a summary that lags, which the host check repairs (the
        hosts' own counters, which guard every reservation, are exact either way)."""
        # room left for the events (an event and its log's counter each) and for the
        # claim of an Idempotency-Key, which rides on the first transaction of its
        # request (infra/table/idempotency.py)
        if len(entries) + len(summary) + 2 * len(events) + 1 <= MAX_TRANSACTION_ITEMS:
            self.db.transact(entries + summary, events=events)
            return
        self.db.transact(entries, events=events)
        for move in summary:
            self.db.transact([move])

    def set_env_lease(
        self, env: Env, vms: Sequence[Workload], expires_at: datetime, now: datetime
    ) -> None:
        """Renew an environment and every live VM of it, in one transaction."""
        entries = [self.envs.lease(env, expires_at, now)]
        entries += [self.workloads.lease(vm, expires_at, now) for vm in vms]
        after = {"expires_at": expires_at.isoformat()}
        self.db.transact(entries, events=[_env_change("renewed", env, after)])

    def begin_env_operations(
        self,
        env: Env,
        changes: Sequence[tuple[Workload, Operation]],
        now: datetime,
        *,
        deleting: bool = False,
    ) -> None:
        """Record one operation on each VM of `changes` (each must be idle, as read) in
        one transaction; with `deleting`, the VMs become `deleting` and so does the env."""
        fields = {"status": WorkloadStatus.DELETING.value} if deleting else None
        entries: list[TxEntry] = []
        per_host: dict[str, HostMove] = {}
        for workload, operation in changes:
            if deleting:
                change = status_change(workload.status, WorkloadStatus.DELETING)
                per_host[workload.host_id] = per_host.get(workload.host_id, HostMove()) + change
            entries.append(
                self.workloads.begin(
                    workload, operation.id, now, fields=fields, on_fail=refuse_vm_change(workload)
                )
            )
            entries.append(self.operations.put_new(operation))
        if deleting:
            entries.append(self.envs.mark_deleting(env, now))
        if entries:
            what = "deleting" if deleting else "changing"
            after = {"operation_ids": [operation.id for _, operation in changes]}
            counted = self._counted(env.cluster_id, per_host)
            self._transact_with_summary(entries, counted, [_env_change(what, env, after)])


def _database_change(what: str, database: ManagedDatabase) -> Change:
    after = {
        "name": database.name,
        "engine": database.engine.value,
        "container_id": database.owner_id,
    }
    return record_change("database", what, database.id, database.cluster_id, after)


def _backup_change(what: str, backup: Backup, extra: Item | None = None) -> Change:
    after = {"name": backup.name, "container_id": backup.workload_id, **(extra or {})}
    return record_change("backup", what, backup.id, backup.cluster_id, after)


def _env_change(what: str, env: Env, after: Item) -> Change:
    return record_change("env", what, env.id, env.cluster_id, after)
