"""MySQL and MariaDB through PyMySQL: identifiers in backticks (a backtick doubled),
passwords as bound parameters (PyMySQL escapes them)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pymysql

from infra.drivers.database import CONNECT_TIMEOUT_S, database_host_error
from shared.databases import DatabaseHost


def quoted(identifier: str) -> str:
    return "`" + identifier.replace("`", "``") + "`"


def account(user: str) -> str:
    """`'user'@'%'`, written for a statement with bound parameters (PyMySQL formats
    those with %, so the host's % is doubled)."""
    return "'" + user.replace("\\", "\\\\").replace("'", "''") + "'@'%%'"


class MysqlServer:
    def __init__(self, host: DatabaseHost, admin_password: str) -> None:
        self._host = host
        self._password = admin_password

    @contextmanager
    def _cursor(self, action: str) -> Iterator[Any]:
        try:
            conn = pymysql.connect(
                host=self._host.host,
                port=self._host.port,
                user=self._host.username,
                password=self._password,
                connect_timeout=CONNECT_TIMEOUT_S,
                autocommit=True,
            )
            with conn, conn.cursor() as cur:
                yield cur
        except pymysql.MySQLError as exc:
            raise database_host_error(self._host, action, exc) from exc

    def version(self) -> str:
        with self._cursor("read the version") as cur:
            cur.execute("SELECT VERSION()")
            row = cur.fetchone()
        return str(row[0]).split("-")[0] if row else ""

    def create(self, database: str, user: str, password: str) -> None:
        with self._cursor(f"create database {database}") as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS {quoted(database)}")
            cur.execute(f"CREATE USER IF NOT EXISTS {account(user)} IDENTIFIED BY %s", (password,))
            cur.execute(f"ALTER USER {account(user)} IDENTIFIED BY %s", (password,))
            cur.execute(f"GRANT ALL PRIVILEGES ON {quoted(database)}.* TO {account(user)}", ())

    def set_password(self, user: str, password: str) -> None:
        with self._cursor(f"set the password of {user}") as cur:
            cur.execute(f"ALTER USER {account(user)} IDENTIFIED BY %s", (password,))

    def drop(self, database: str, user: str) -> None:
        with self._cursor(f"drop database {database}") as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {quoted(database)}")
            cur.execute(f"DROP USER IF EXISTS {account(user)}", ())
