"""gunicorn.conf.py: sensible defaults, every one overridable from the environment."""

from __future__ import annotations

import os
import runpy
from typing import Any

import pytest

from shared.settings import Settings
from tests.deploy.conftest import ROOT

OVERRIDES = (
    "CORRAL_BIND",
    "CORRAL_WEB_WORKERS",
    "CORRAL_WEB_THREADS",
    "CORRAL_WEB_TIMEOUT",
    "CORRAL_WEB_KEEPALIVE",
)


def load(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    for name in OVERRIDES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(ROOT / "gunicorn.conf.py"))


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    conf = load(monkeypatch)
    cores = len(os.sched_getaffinity(0))
    assert conf["wsgi_app"] == "handlers.asgi:get_app()"
    assert conf["bind"] == ["127.0.0.1:8080"]
    assert conf["workers"] == min(2 * cores + 1, 9)
    # Waits park on the event loop; the other requests get the app's threads.
    assert conf["worker_class"] == "asgi"
    assert "threads" not in conf
    assert Settings.from_env({}).web_threads >= 4
    # A long-poll wait (capped at 25 s by default) must end before gunicorn
    # declares the worker hung.
    assert conf["timeout"] > 25
    assert conf["graceful_timeout"] > 0 and conf["keepalive"] > 0
    assert "%(s)s" in conf["access_log_format"]
    assert "Authorization" not in conf["access_log_format"]


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    conf = load(
        monkeypatch,
        CORRAL_BIND="0.0.0.0:9000,unix:/run/corral.sock",
        CORRAL_WEB_WORKERS="3",
        CORRAL_WEB_TIMEOUT="90",
        CORRAL_WEB_KEEPALIVE="75",
    )
    assert conf["bind"] == ["0.0.0.0:9000", "unix:/run/corral.sock"]
    assert (conf["workers"], conf["timeout"], conf["keepalive"]) == (3, 90, 75)
    assert Settings.from_env({"CORRAL_WEB_THREADS": "32"}).web_threads == 32
