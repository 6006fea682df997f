"""Database hosts (`DBHOST#<id>` / `#META`, listed on GSI1 under `DBHOSTS`) and managed
databases (`CLUSTER#<cluster>` / `DATABASE#<id>`, listed on GSI1 under `DATABASES`,
with a `DBNAME#<name>` guard item per cluster that keeps names unique). A host's
`database_count` moves in the same transaction as the database records it holds,
under the condition that it stays within `max_databases` and never below zero."""

from __future__ import annotations

from datetime import datetime

from infra.table import schema
from infra.table.attributes import Item, failure_attrs, failure_from, moment, set_failure
from infra.table.dynamo import Dynamo, TxEntry
from infra.table.expression import Expression
from shared.changes import record_change
from shared.clock import iso, parse_iso, stamp
from shared.databases import (
    DatabaseEngine,
    DatabaseHost,
    DatabaseHostHealth,
    DatabaseStatus,
    ManagedDatabase,
)
from shared.errors import Conflict, CorralError, DatabaseHostFull, Failure, NotFound


def database_host_item(h: DatabaseHost) -> Item:
    return {
        "pk": schema.database_host_pk(h.id),
        "sk": schema.META,
        "gsi1pk": schema.ALL_DATABASE_HOSTS,
        "gsi1sk": h.id,
        "type": "database_host",
        "id": h.id,
        "name": h.name,
        "engine": h.engine.value,
        "host": h.host,
        "port": h.port,
        "username": h.username,
        "password": h.password,
        "max_databases": h.max_databases,
        "database_count": h.database_count,
        "cluster_ids": list(h.cluster_ids),
        "server_version": h.server_version,
        "health": h.health.value,
        "health_error": h.health_error,
        "checked_at": iso(h.checked_at),
        "created_at": iso(h.created_at),
        "updated_at": iso(h.updated_at),
    }


def database_host_from(item: Item) -> DatabaseHost:
    return DatabaseHost(
        id=item["id"],
        name=item["name"],
        engine=DatabaseEngine(item["engine"]),
        host=item["host"],
        port=int(item["port"]),
        username=item["username"],
        password=item["password"],
        max_databases=int(item["max_databases"]),
        database_count=int(item.get("database_count", 0)),
        cluster_ids=tuple(item.get("cluster_ids") or ()),
        server_version=item.get("server_version"),
        health=DatabaseHostHealth(item.get("health", DatabaseHostHealth.UNKNOWN.value)),
        health_error=item.get("health_error"),
        checked_at=parse_iso(item.get("checked_at")),
        created_at=moment(item["created_at"]),
        updated_at=moment(item["updated_at"]),
    )


def database_item(d: ManagedDatabase) -> Item:
    return {
        "pk": schema.cluster_pk(d.cluster_id),
        "sk": schema.database_sk(d.id),
        "gsi1pk": schema.ALL_DATABASES,
        "gsi1sk": d.id,
        "type": "database",
        "id": d.id,
        "cluster_id": d.cluster_id,
        "name": d.name,
        "engine": d.engine.value,
        "version": d.version,
        "status": d.status.value,
        "host_id": d.host_id,
        "connection_host": d.connection_host,
        "connection_port": d.connection_port,
        "connection_user": d.connection_user,
        "connection_database": d.connection_database,
        "password": d.password,
        "app_id": d.app_id,
        "owner_id": d.owner_id,
        **failure_attrs(d.failure),
        "created_at": iso(d.created_at),
        "updated_at": iso(d.updated_at),
    }


def database_from(item: Item) -> ManagedDatabase:
    return ManagedDatabase(
        id=item["id"],
        cluster_id=item["cluster_id"],
        name=item["name"],
        engine=DatabaseEngine(item["engine"]),
        version=item.get("version"),
        status=DatabaseStatus(item["status"]),
        host_id=item["host_id"],
        connection_host=item["connection_host"],
        connection_port=int(item["connection_port"]),
        connection_user=item["connection_user"],
        connection_database=item["connection_database"],
        password=item["password"],
        app_id=item.get("app_id"),
        owner_id=item.get("owner_id"),
        failure=failure_from(item),
        created_at=moment(item["created_at"]),
        updated_at=moment(item["updated_at"]),
    )


class DatabaseHostStore:
    def __init__(self, db: Dynamo) -> None:
        self.db = db

    def get(self, host_id: str) -> DatabaseHost:
        item = self.db.get(schema.database_host_pk(host_id), schema.META)
        if item is None:
            raise NotFound("Database host not found.")
        return database_host_from(item)

    def list(self) -> list[DatabaseHost]:
        items = self.db.query(schema.ALL_DATABASE_HOSTS, index=schema.GSI1)
        return [database_host_from(i) for i in items]

    def create(self, host: DatabaseHost) -> None:
        change = record_change("database_host", "created", host.id, None, {"name": host.name})
        self.db.put_new(
            database_host_item(host), Conflict("Database host already exists."), [change]
        )

    def update(self, host: DatabaseHost, fields: Item, now: datetime) -> DatabaseHost:
        """Change an operator's fields; `max_databases` never below what it holds."""
        write = Expression().set_all(fields).set("updated_at", stamp(now)).when_exists()
        if "max_databases" in fields:
            write.when_at_most("database_count", fields["max_databases"])

        def refuse(old: Item | None) -> CorralError:
            if old is None:
                return NotFound("Database host not found.")
            return Conflict(
                f"The host holds {old.get('database_count', 0)} databases: "
                "max_databases cannot go below that."
            )

        change = record_change("database_host", "updated", host.id, None, fields)
        item = self.db.update(
            schema.database_host_pk(host.id), schema.META, write, on_fail=refuse, events=[change]
        )
        return database_host_from(item)

    def record_check(
        self, host_id: str, version: str | None, error: str | None, now: datetime
    ) -> None:
        health = DatabaseHostHealth.DOWN if error else DatabaseHostHealth.READY
        write = Expression().set("health", health.value).set("checked_at", stamp(now))
        if version:
            write.set("server_version", version)
        if error:
            write.set("health_error", error)
        else:
            write.remove("health_error")
        self.db.update(schema.database_host_pk(host_id), schema.META, write.when_exists())

    def delete(self, host_id: str) -> None:
        def refuse(old: Item | None) -> CorralError:
            if old is None:
                return NotFound("Database host not found.")
            return Conflict(
                f"The database host holds {old.get('database_count', 0)} databases; "
                "delete them first."
            )

        condition = Expression().when_exists().when_equal("database_count", 0)
        change = record_change("database_host", "deleted", host_id, None)
        self.db.delete(
            schema.database_host_pk(host_id),
            schema.META,
            condition,
            on_fail=refuse,
            events=[change],
        )

    # -- transaction entries -------------------------------------------------------

    def take_slot(self, host: DatabaseHost, now: datetime) -> TxEntry:
        write = Expression().add("database_count", 1).set("updated_at", stamp(now))
        write.when_exists().when(f"{write.name('database_count')} < {write.name('max_databases')}")

        def refuse(old: Item | None) -> CorralError:
            if old is None:
                return NotFound("Database host not found.")
            return DatabaseHostFull(
                f"The database host of {host.engine.value} is full "
                f"({old.get('max_databases')} databases)."
            )

        return self.db.tx_update(
            schema.database_host_pk(host.id), schema.META, write, on_fail=refuse
        )

    def give_slot(self, host_id: str, now: datetime) -> TxEntry:
        write = Expression().add("database_count", -1).set("updated_at", stamp(now))
        write.when_at_least("database_count", 1)
        return self.db.tx_update(schema.database_host_pk(host_id), schema.META, write)


class DatabaseStore:
    def __init__(self, db: Dynamo) -> None:
        self.db = db

    def get(self, cluster_id: str, database_id: str) -> ManagedDatabase:
        item = self.db.get(schema.cluster_pk(cluster_id), schema.database_sk(database_id))
        if item is None:
            raise NotFound("Database not found.")
        return database_from(item)

    def find(self, database_id: str) -> ManagedDatabase:
        """A database by id alone (the operator's routes): its GSI1 entry, then the item."""
        for item in self.db.query(schema.ALL_DATABASES, index=schema.GSI1, sk_prefix=database_id):
            if item["id"] == database_id:
                return self.get(item["cluster_id"], database_id)
        raise NotFound("Database not found.")

    def every(self) -> list[ManagedDatabase]:
        return [database_from(i) for i in self.db.query(schema.ALL_DATABASES, index=schema.GSI1)]

    def in_cluster(self, cluster_id: str) -> list[ManagedDatabase]:
        items = self.db.query(schema.cluster_pk(cluster_id), sk_prefix="DATABASE#", consistent=True)
        return [database_from(i) for i in items]

    def set_status(
        self,
        database: ManagedDatabase,
        status: DatabaseStatus,
        failure: Failure | None,
        now: datetime,
        *,
        expect: DatabaseStatus,
    ) -> bool:
        """Move the record from `expect` to `status`; False when it was not in `expect`."""
        write = Expression().set("status", status.value).set("updated_at", stamp(now))
        set_failure(write, failure).when_equal("status", expect.value)
        after: Item = {"status": status.value}
        if failure is not None:
            after["error"] = {"code": failure.code, "message": failure.message}
        change = record_change(
            "database", status.value, database.id, database.cluster_id, after, {"status": expect}
        )
        try:
            self.db.update(
                schema.cluster_pk(database.cluster_id),
                schema.database_sk(database.id),
                write,
                on_fail=lambda _: Conflict("moved on"),
                events=[change],
            )
        except Conflict:
            return False
        return True

    # -- transaction entries -------------------------------------------------------

    def put_new(self, database: ManagedDatabase) -> list[TxEntry]:
        """The record and the guard of its name in its cluster."""
        guard = {
            "pk": schema.cluster_pk(database.cluster_id),
            "sk": schema.database_name_sk(database.name),
            "type": "database_name",
            "database_id": database.id,
        }
        taken = Conflict(f"A database named {database.name} exists in this cluster.")
        return [
            self.db.tx_put(database_item(database), Expression().when_absent()),
            self.db.tx_put(guard, Expression().when_absent(), on_fail=lambda _: taken),
        ]

    def remove(self, database: ManagedDatabase) -> list[TxEntry]:
        gone = Expression().when_equal("status", DatabaseStatus.DELETING.value)
        return [
            self.db.tx_delete(
                schema.cluster_pk(database.cluster_id),
                schema.database_sk(database.id),
                gone,
                on_fail=lambda _: Conflict("already removed"),
            ),
            self.db.tx_delete(
                schema.cluster_pk(database.cluster_id),
                schema.database_name_sk(database.name),
                Expression(),
            ),
        ]

    def set_password(self, database: ManagedDatabase, sealed: str, now: datetime) -> TxEntry:
        """A new (sealed) password for a ready database; the server gets it next."""
        write = Expression().set("password", sealed).set("updated_at", stamp(now))
        write.when_equal("status", DatabaseStatus.READY.value)
        return self._entry(database, write)

    def mark_deleting(self, database: ManagedDatabase, now: datetime) -> TxEntry:
        write = Expression().set("status", DatabaseStatus.DELETING.value)
        write.set("updated_at", stamp(now)).when_equal("status", database.status.value)
        return self._entry(database, write)

    def _entry(self, database: ManagedDatabase, write: Expression) -> TxEntry:
        def refuse(old: Item | None) -> CorralError:
            if old is None:
                return NotFound("Database not found.")
            return Conflict("The database changed meanwhile; retry.")

        return self.db.tx_update(
            schema.cluster_pk(database.cluster_id),
            schema.database_sk(database.id),
            write,
            on_fail=refuse,
        )

    def bind(self, database: ManagedDatabase, app_id: str | None, now: datetime) -> TxEntry:
        """Set (or, with None, clear) the container the database is bound to, if it is
        ready and still bound as it was read."""
        write = Expression().set("updated_at", stamp(now))
        if app_id is None:
            write.remove("app_id")
        else:
            write.set("app_id", app_id)
        write.when_equal("status", DatabaseStatus.READY.value)
        if database.app_id is None:
            write.when_absent("app_id")
        else:
            write.when_equal("app_id", database.app_id)
        return self._entry(database, write)
