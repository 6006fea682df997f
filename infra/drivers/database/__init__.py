"""Database servers, for the workers only: create and drop a database and its user,
set a user's password, read the server's version. Identifiers are Corral's own
(`server_names`) and are quoted anyway; passwords travel as bound parameters or
literals the library escapes, never formatted into SQL by hand."""

from __future__ import annotations

from typing import Protocol

from shared.databases import DatabaseEngine, DatabaseHost
from shared.errors import HostError

CONNECT_TIMEOUT_S = 5

DATABASE_HOST_FAILED = (
    "The database host could not carry out the change. The operator has the details."
)


def database_host_error(host: DatabaseHost, action: str, exc: Exception) -> HostError:
    """A server's refusal as the operator reads it; tenants get plain words."""
    return HostError(
        f"database host {host.name} ({host.host}:{host.port}): {action}: {exc}",
        code="database_host_error",
        public=DATABASE_HOST_FAILED,
    )


class DatabaseServer(Protocol):
    def version(self) -> str: ...

    def create(self, database: str, user: str, password: str) -> None:
        """Create the user (or set its password) and the database it owns; idempotent."""
        ...

    def set_password(self, user: str, password: str) -> None: ...

    def drop(self, database: str, user: str) -> None:
        """Drop the database and its user; missing is success."""
        ...


def server_for(host: DatabaseHost, admin_password: str) -> DatabaseServer:
    if host.engine == DatabaseEngine.POSTGRES:
        from infra.drivers.database.postgres import PostgresServer

        return PostgresServer(host, admin_password)
    from infra.drivers.database.mysql import MysqlServer

    return MysqlServer(host, admin_password)
