"""Debian's redis-server on a free port, in memory (no snapshots, no append-only file)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from devstack.processes import Server, StartupError, free_port, listening, start_server


def start_redis(workdir: Path, log_path: Path) -> Server:
    """Start redis-server with `workdir` as its directory and wait until it listens."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise StartupError("redis-server is not installed (Debian package redis-server)")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [
        binary,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--save", "",
        "--appendonly", "no",
        "--dir", str(workdir),
    ]  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    return start_server(
        "redis-server", command, dict(os.environ), log_path, url, lambda: listening(port)
    )
