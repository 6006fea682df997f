"""Debian's redis-server on a free port, in memory (no snapshots, no append-only file),
with a password: whoever writes to Corral's Redis enqueues jobs that workers run
against the hosts, and a VM guest or a container may reach the loopback."""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from devstack.processes import Server, StartupError, free_port, listening, start_server


def start_redis(workdir: Path, log_path: Path) -> Server:
    """Start redis-server with `workdir` as its directory and a fresh random password,
    and wait until it listens. The URL returned carries the password."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise StartupError("redis-server is not installed (Debian package redis-server)")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    password = secrets.token_urlsafe(24)
    # In a file only we may read, not on the command line (/proc/PID/cmdline is public).
    config = workdir / "redis.conf"
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(
            f"port {port}\n"
            "bind 127.0.0.1\n"
            f"requirepass {password}\n"
            'save ""\n'
            "appendonly no\n"
            f"dir {workdir}\n"
        )
    url = f"redis://:{password}@127.0.0.1:{port}/0"
    return start_server(
        "redis-server", [binary, str(config)], dict(os.environ), log_path, url,
        lambda: listening(port),
    )  # fmt: skip
