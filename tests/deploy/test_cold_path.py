"""The Lambda cold path stays light: importing the HTTP entry and building its
app loads no host driver library and none of rq's worker machinery, and building it
loads no route's resource module (handlers.routing builds each on first use)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ["docker", "paramiko", "rq", "rq.worker", "prometheus_client"]
# What a route's resource loads: its module, the views, shapes and request models.
ROUTE_MODULES = ["handlers.public.containers", "handlers.views", "handlers.shapes", "pydantic"]
BUILD = (
    "import handlers.lambda_http as entry\n"
    "from handlers.app import get_app\n"
    "handler = entry.make_handler(get_app())"
)


def loaded_after(code: str, modules: list[str] = HEAVY) -> list[str]:
    report = f"print(json.dumps([m for m in {modules!r} if m in sys.modules]))"
    probe = f"{code}\nimport json, sys\n{report}"
    env = {
        "PATH": "/usr/bin:/bin",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def test_importing_the_http_entry_loads_nothing_heavy() -> None:
    assert loaded_after("import handlers.lambda_http") == []


def test_building_the_app_loads_nothing_heavy() -> None:
    assert loaded_after(BUILD) == []


def test_building_the_app_loads_no_route_until_it_is_hit() -> None:
    assert loaded_after(BUILD, ROUTE_MODULES) == []
    # Routing a request to /containers/:id builds that route alone.
    route = "\nget_app()._router.find('/api/public/clusters/v1/containers/x')"
    loaded = loaded_after(BUILD + route, [*ROUTE_MODULES, "handlers.admin.clusters"])
    assert loaded == ROUTE_MODULES  # and no other route's, such as handlers.admin.clusters


def test_importing_the_schedule_entries_loads_nothing_heavy() -> None:
    assert loaded_after("import handlers.lambda_schedule") == []


def test_the_probe_does_see_heavy_modules() -> None:
    """Guards the test itself: a module that is loaded is reported."""
    assert loaded_after("import rq") == ["rq", "rq.worker"]


def test_the_cold_path_bench_runs() -> None:
    from bench import cold_path

    result = cold_path.measure(runs=1, warmup=False)
    assert result["boto3_s"] > 0 and result["lambda_http_s"] > 0
    assert result["ratio"] == round(result["lambda_http_s"] / result["boto3_s"], 2)
    assert result["heavy_modules_loaded"] == []
