"""Corral's own processes on the local stack, as `make run` and the benchmarks start
them: the API under gunicorn (with the repository's gunicorn.conf.py) and rq workers
on Corral's queues."""

from __future__ import annotations

import sys
from pathlib import Path

from devstack.processes import REPO, Server, answers_200, start_server
from shared.settings import Settings

BIN = Path(sys.executable).parent  # the venv's console scripts: gunicorn, rq
API_APP = "handlers.asgi:get_app()"


def start_api(
    env: dict[str, str],
    port: int,
    log_path: Path,
    app: str = API_APP,
    name: str = "api",
    append_log: bool = False,
    code: Path = REPO,
) -> Server:
    """`app` under gunicorn on 127.0.0.1:`port`, served from the checkout `code` (its
    gunicorn.conf.py and its modules); returns once /health answers 200."""
    # gunicorn.conf.py holds the settings (asgi workers: waits park on the event
    # loop); these environment variables are its knobs.
    env = env | {"CORRAL_BIND": f"127.0.0.1:{port}"}
    env.setdefault("CORRAL_WEB_GRACEFUL_TIMEOUT", "5")  # Ctrl-C need not wait 30 s
    command = [str(BIN / "gunicorn"), "--config", "gunicorn.conf.py", app]
    url = f"http://127.0.0.1:{port}"
    return start_server(
        f"{name} (gunicorn)",
        command,
        env,
        log_path,
        url,
        lambda: answers_200(f"{url}/health"),
        cwd=code,
        append_log=append_log,
    )


def worker_command(settings: Settings) -> list[str]:
    """A plain `rq worker` (JSON serializer, Corral's worker class) on Corral's queues,
    the priority queue first. rq finds Redis in its environment (`rq_env`)."""
    return [
        str(BIN / "rq"), "worker", "--with-scheduler",
        "--worker-class", "workers.worker.CorralWorker",
        "--serializer", "rq.serializers.JSONSerializer",
        settings.priority_queue_name, settings.queue_name,
    ]  # fmt: skip


def rq_env(redis_url: str) -> dict[str, str]:
    """What tells rq's commands (worker, cron) where Redis is: the URL carries the
    password, which must not show on a command line."""
    return {"RQ_REDIS_URL": redis_url}
