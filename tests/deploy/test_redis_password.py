"""The local stack's Redis (make run, the tests, the benchmarks) takes a password:
whoever writes to it enqueues jobs that workers run against the hosts."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis as redis_lib

from devstack.redis_server import start_redis


def test_redis_refuses_a_client_without_its_password(tmp_path: Path) -> None:
    server = start_redis(tmp_path, tmp_path / "redis.log")
    try:
        parsed = urlsplit(server.url)
        assert parsed.password and len(parsed.password) >= 24
        host, port = str(parsed.hostname), parsed.port or 6379
        anonymous = redis_lib.Redis(host=host, port=port)
        with pytest.raises(redis_lib.AuthenticationError):
            anonymous.ping()
        anonymous.close()
        wrong = redis_lib.Redis(host=host, port=port, password="x")
        with pytest.raises(redis_lib.AuthenticationError):
            wrong.ping()
        wrong.close()
        assert redis_lib.Redis.from_url(server.url).ping()
        # The password is in a file only its owner reads, never on a command line.
        config = tmp_path / "redis.conf"
        assert stat.S_IMODE(os.stat(config).st_mode) == 0o600
        cmdline = Path(f"/proc/{server.child.pid}/cmdline").read_bytes()
        assert parsed.password.encode() not in cmdline
    finally:
        server.stop()


def test_each_start_gets_a_new_password(tmp_path: Path) -> None:
    first = start_redis(tmp_path / "a", tmp_path / "a.log")
    second = start_redis(tmp_path / "b", tmp_path / "b.log")
    try:
        assert urlsplit(first.url).password != urlsplit(second.url).password
    finally:
        first.stop()
        second.stop()
