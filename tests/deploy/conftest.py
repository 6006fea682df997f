"""Deployment tests: the same Falcon app behind a real gunicorn process and
behind the Lambda entries, against the real Redis and table (DynamoDB Local) servers.

gunicorn reads its settings from the environment once, at start, so it runs
once per session against one fixed table name; the `settings` fixture below
makes every test use that name (the `dynamo` fixture still creates the table
fresh for each test and deletes it after)."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.processes import free_port
from shared.settings import Settings
from tests.deploy.events import Request, Response

ROOT = Path(__file__).resolve().parents[2]
TABLE = f"corral-deploy-{os.getpid()}"
QUEUE = "corral-test"
WAIT_CAP_SECONDS = 5.0
# Small, so that a test reaches it with a few waits.
MAX_OPEN_PER_KEY = 3


def corral_env(table_endpoint: str, redis_url: str) -> dict[str, str]:
    """The environment a deployed Corral reads (Settings.from_env), pointed at
    the fixture servers."""
    return {
        "CORRAL_TABLE": TABLE,
        "CORRAL_DYNAMODB_ENDPOINT": table_endpoint,
        "CORRAL_REDIS_URL": redis_url,
        "CORRAL_QUEUE": QUEUE,
        "CORRAL_WAIT_CAP_SECONDS": str(WAIT_CAP_SECONDS),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


@pytest.fixture
def settings(table_endpoint: str, redis_url: str) -> Settings:
    expected = Settings.from_env(corral_env(table_endpoint, redis_url))
    assert expected.wait_cap_seconds == WAIT_CAP_SECONDS
    return expected


@dataclass
class Gunicorn:
    host: str
    port: int
    log: Path

    def call(self, req: Request) -> Response:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            path = req.path + (f"?{req.query_string}" if req.query else "")
            conn.putrequest(req.method, path)
            for name, values in req.headers.items():
                for value in values:
                    conn.putheader(name, value)
            if req.body is not None:
                conn.putheader("Content-Length", str(len(req.body)))
            conn.endheaders(req.body)
            resp = conn.getresponse()
            headers = {k.lower(): v for k, v in resp.getheaders()}
            return Response(resp.status, headers, resp.read())
        finally:
            conn.close()


@pytest.fixture(scope="session")
def gunicorn(
    table_endpoint: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gunicorn]:
    """gunicorn started the way production starts it: `gunicorn -c gunicorn.conf.py`."""
    port = free_port()
    log = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    env = (
        os.environ
        | corral_env(table_endpoint, redis_url)
        | {
            "CORRAL_BIND": f"127.0.0.1:{port}",
            "CORRAL_WEB_WORKERS": "1",
            "CORRAL_WEB_THREADS": "4",
            "CORRAL_MAX_OPEN_PER_KEY": str(MAX_OPEN_PER_KEY),
        }
    )
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py")],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Gunicorn("127.0.0.1", port, log)
    try:
        _wait_until_serving(server, proc)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _wait_until_serving(server: Gunicorn, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"gunicorn exited with {proc.returncode}:\n{server.log.read_text()}")
        try:
            server.call(Request("GET", "/health"))
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"gunicorn did not answer within 30 s:\n{server.log.read_text()}")
