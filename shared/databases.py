"""Database hosts (servers Corral creates databases on) and managed databases (a
database and its user on one of them). Plain records and the decisions about them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from urllib.parse import quote

from shared.errors import Failure


class DatabaseEngine(StrEnum):
    POSTGRES = "postgres"
    MYSQL = "mysql"


class DatabaseStatus(StrEnum):
    CREATING = "creating"
    READY = "ready"
    ERROR = "error"
    DELETING = "deleting"


class DatabaseHostHealth(StrEnum):
    UNKNOWN = "unknown"
    READY = "ready"
    DOWN = "down"


@dataclass(frozen=True)
class DatabaseHost:
    """A PostgreSQL or MySQL server. `password` is sealed (infra/secrets.py)."""

    id: str
    name: str
    engine: DatabaseEngine
    host: str
    port: int
    username: str
    password: str
    max_databases: int
    database_count: int
    cluster_ids: tuple[str, ...]  # empty: serves every cluster
    created_at: datetime
    updated_at: datetime
    server_version: str | None = None  # what the periodic check read, e.g. "15.4"
    health: DatabaseHostHealth = DatabaseHostHealth.UNKNOWN
    health_error: str | None = None
    checked_at: datetime | None = None

    @property
    def major_version(self) -> str | None:
        return self.server_version.split(".")[0] if self.server_version else None

    def serves(self, cluster_id: str) -> bool:
        return not self.cluster_ids or cluster_id in self.cluster_ids


@dataclass(frozen=True)
class ManagedDatabase:
    """A database and its user on a database host; 001's record plus where it lives.

    `owner_id` is the container a tenant created it for (000's `databases`, counted
    against that container's allocation); None for an operator's managed database
    (counted against the cluster's pool). `app_id` is the container it is bound to."""

    id: str
    cluster_id: str
    name: str
    engine: DatabaseEngine
    version: str | None
    status: DatabaseStatus
    host_id: str
    connection_host: str
    connection_port: int
    connection_user: str
    connection_database: str
    password: str  # sealed
    created_at: datetime
    updated_at: datetime
    app_id: str | None = None
    owner_id: str | None = None
    failure: Failure | None = None


def server_names(database_id: str) -> tuple[str, str]:
    """The database's and its user's names on the server: from Corral's id, never from
    what a user typed (identifiers are quoted anyway)."""
    short = database_id.replace("-", "")[:20]
    return f"db_{short}", f"u_{short}"


def connection_environment(db: ManagedDatabase, password: str) -> dict[str, str]:
    """The variables a container bound to `db` gets: DATABASE_URL and the engine's own."""
    user, secret = quote(db.connection_user, safe=""), quote(password, safe="")
    scheme = "postgresql" if db.engine == DatabaseEngine.POSTGRES else "mysql"
    host = db.connection_host
    url = f"{scheme}://{user}:{secret}@{host}:{db.connection_port}/{db.connection_database}"
    if db.engine == DatabaseEngine.POSTGRES:
        prefix, names = "PG", ("HOST", "PORT", "USER", "PASSWORD", "DATABASE")
    else:
        prefix, names = "MYSQL_", ("HOST", "PORT", "USER", "PASSWORD", "DATABASE")
    values = (host, str(db.connection_port), db.connection_user, password, db.connection_database)
    return {"DATABASE_URL": url} | {prefix + n: v for n, v in zip(names, values, strict=True)}
