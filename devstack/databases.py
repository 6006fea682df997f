"""Local database servers for `make run` and the tests: Debian's PostgreSQL (initdb into
a fresh folder, run as the `postgres` user when we are root: it refuses to run as
root) and MariaDB (mariadb-install-db into a fresh folder), each on a free loopback
port with an administrator whose password is random. What Corral registers as a
database host is `DatabaseServer.host_body()`."""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.processes import Server, StartupError, free_port, listening, start_server

ADMIN_USER = "corral"


@dataclass
class DatabaseServer:
    engine: str  # postgres or mysql, as the API names them
    server: Server
    port: int
    username: str
    password: str
    host: str = "127.0.0.1"

    def stop(self) -> None:
        self.server.stop()

    def host_body(self, name: str, **extra: Any) -> dict[str, Any]:
        """The body of POST /api/v1/database-hosts for this server."""
        return {
            "name": name,
            "engine": self.engine,
            "host": self.host,
            "port": self.port,
            "username": self.username,
            "password": self.password,
        } | extra


def _private_file(path: Path, text: str, owner: pwd.struct_passwd | None = None) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    if owner is not None:
        os.chown(path, owner.pw_uid, owner.pw_gid)


def _postgres_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise StartupError(f"{name} is not installed (Debian package postgresql)")
    return found[-1]


def start_postgres(workdir: Path, log_path: Path, keep: bool = False) -> DatabaseServer:
    """initdb into `workdir`/data and start postgres on a free port; with `keep`, a data
    folder an earlier start left (and its administrator's password) is used again. As
    root, the folder is given to the `postgres` user and the server runs as it;
    `workdir` and its parents must then be traversable by that user."""
    initdb, postgres = _postgres_bin("initdb"), _postgres_bin("postgres")
    as_root = os.geteuid() == 0
    owner = pwd.getpwnam("postgres") if as_root else None
    run_as = (
        ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]
        if as_root
        else []
    )
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "data"
    saved = workdir / "admin-password"
    if keep and (data / "PG_VERSION").exists() and saved.exists():
        return _run_postgres(postgres, data, run_as, log_path, saved.read_text().strip())
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(mode=0o700)
    if owner is not None:
        os.chown(workdir, owner.pw_uid, owner.pw_gid)
        os.chown(data, owner.pw_uid, owner.pw_gid)
    password = secrets.token_urlsafe(24)
    _private_file(saved, password)
    pwfile = workdir / "pwfile"
    _private_file(pwfile, password + "\n", owner)
    init_log = workdir / "initdb.log"
    with init_log.open("wb") as out:
        done = subprocess.run(
            [*run_as, initdb, "-D", str(data), "-U", ADMIN_USER, f"--pwfile={pwfile}",
             "--auth=scram-sha-256", "--encoding=UTF8", "--no-sync"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip
    pwfile.unlink()
    if done.returncode != 0:
        raise StartupError(f"initdb failed: {init_log.read_text()[-2000:]}")
    return _run_postgres(postgres, data, run_as, log_path, password)


def _run_postgres(
    postgres: str, data: Path, run_as: list[str], log_path: Path, password: str
) -> DatabaseServer:
    port = free_port()
    command = [
        *run_as, postgres, "-D", str(data), "-p", str(port), "-c", "listen_addresses=127.0.0.1",
        "-c", f"unix_socket_directories={data}", "-c", "fsync=off", "-c", "max_connections=100",
    ]  # fmt: skip
    isready = [_postgres_bin("pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)]

    def accepting() -> bool:  # listening is not enough: it refuses logins while starting up
        return listening(port) and subprocess.run(isready, check=False).returncode == 0

    server = start_server(
        "postgres", command, dict(os.environ), log_path, f"postgresql://127.0.0.1:{port}",
        accepting,
    )  # fmt: skip
    return DatabaseServer("postgres", server, port, ADMIN_USER, password)


def start_mariadb(workdir: Path, log_path: Path) -> DatabaseServer:
    """mariadb-install-db into `workdir`/data and start mariadbd on a free port, with an
    administrator `corral` (every privilege, with grant option) made by an init file."""
    install, mariadbd = shutil.which("mariadb-install-db"), shutil.which("mariadbd")
    if install is None or mariadbd is None:
        raise StartupError("mariadbd is not installed (Debian package mariadb-server)")
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "data"
    shutil.rmtree(data, ignore_errors=True)
    user = pwd.getpwuid(os.geteuid()).pw_name
    init_log = workdir / "install.log"
    with init_log.open("wb") as out:
        done = subprocess.run(
            [install, "--no-defaults", f"--datadir={data}", f"--user={user}",
             "--auth-root-authentication-method=socket", "--skip-test-db"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip
    if done.returncode != 0:
        raise StartupError(f"mariadb-install-db failed: {init_log.read_text()[-2000:]}")
    password = secrets.token_urlsafe(24)
    init_file = workdir / "init.sql"
    _private_file(
        init_file,
        f"CREATE USER IF NOT EXISTS '{ADMIN_USER}'@'%' IDENTIFIED BY '{password}';\n"
        f"ALTER USER '{ADMIN_USER}'@'%' IDENTIFIED BY '{password}';\n"
        f"GRANT ALL PRIVILEGES ON *.* TO '{ADMIN_USER}'@'%' WITH GRANT OPTION;\n",
    )
    port = free_port()
    command = [
        mariadbd, "--no-defaults", f"--datadir={data}", f"--user={user}", f"--port={port}",
        "--bind-address=127.0.0.1", f"--socket={workdir / 'mysqld.sock'}",
        f"--pid-file={workdir / 'mysqld.pid'}", f"--init-file={init_file}", "--skip-log-bin",
        "--innodb-buffer-pool-size=16M", "--skip-name-resolve",
        "--innodb-flush-log-at-trx-commit=0",
    ]  # fmt: skip
    server = start_server(
        "mariadbd", command, dict(os.environ), log_path, f"mysql://127.0.0.1:{port}",
        lambda: listening(port),
    )  # fmt: skip
    return DatabaseServer("mysql", server, port, ADMIN_USER, password)
