"""PostgreSQL through psycopg 3: one autocommit connection per call (CREATE DATABASE
cannot run in a transaction), identifiers through `sql.Identifier`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

from infra.drivers.database import CONNECT_TIMEOUT_S, database_host_error
from shared.databases import DatabaseHost


class PostgresServer:
    def __init__(self, host: DatabaseHost, admin_password: str) -> None:
        self._host = host
        self._password = admin_password

    @contextmanager
    def _cursor(self, action: str) -> Iterator[psycopg.Cursor[tuple[object, ...]]]:
        try:
            with (
                psycopg.connect(
                    host=self._host.host,
                    port=self._host.port,
                    user=self._host.username,
                    password=self._password,
                    dbname="postgres",
                    connect_timeout=CONNECT_TIMEOUT_S,
                    autocommit=True,
                ) as conn,
                conn.cursor() as cur,
            ):
                yield cur
        except psycopg.Error as exc:
            raise database_host_error(self._host, action, exc) from exc

    def version(self) -> str:
        with self._cursor("read the version") as cur:
            cur.execute("SHOW server_version")
            row = cur.fetchone()
        return str(row[0]).split()[0] if row else ""

    def create(self, database: str, user: str, password: str) -> None:
        with self._cursor(f"create database {database}") as cur:
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,))
            verb = "ALTER" if cur.fetchone() else "CREATE"
            cur.execute(
                sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(user), sql.Literal(password)
                )
            )
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            if not cur.fetchone():
                cur.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(database), sql.Identifier(user)
                    )
                )
            cur.execute(
                sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(database))
            )

    def set_password(self, user: str, password: str) -> None:
        with self._cursor(f"set the password of {user}") as cur:
            cur.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(user), sql.Literal(password)
                )
            )

    def drop(self, database: str, user: str) -> None:
        with self._cursor(f"drop database {database}") as cur:
            cur.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )
            cur.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(user)))
