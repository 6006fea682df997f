"""The Lambda cold path: how long `import handlers.lambda_http` takes in a fresh
interpreter, against `import boto3` alone measured in the same run.

boto3 is the floor: every Corral Lambda needs it and the runtime cannot skip it.
The ratio says what the rest of the HTTP entry (falcon, pydantic, redis,
apig-wsgi, our own modules) costs on top; building the app (boto3 client, Redis
pool, routes) is reported apart, as `lambda_http_app_s`.

    python bench/cold_path.py [RUNS]      # prints one JSON object

`measure(runs)` returns the same dict, for the bench suite.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# Each snippet runs in a fresh interpreter and prints the seconds it took,
# measured inside the child, so interpreter start-up is left out.
SNIPPETS = {
    "boto3_s": "import boto3",
    "lambda_http_s": "import handlers.lambda_http",
    # The third-party packages the HTTP entry imports, alone: what it costs before
    # any module of ours runs.
    "libraries_s": "import apig_wsgi, boto3, falcon, redis\nfrom pydantic import BaseModel",
    "lambda_http_app_s": (
        "import handlers.lambda_http as m\n"
        "from handlers.app import get_app\n"
        "m.make_handler(get_app())"
    ),
}

_CHILD = """\
import time
_t0 = time.perf_counter()
{snippet}
_elapsed = time.perf_counter() - _t0
import sys
_heavy = sorted(m for m in ("docker", "paramiko", "rq", "rq.worker") if m in sys.modules)
print(repr((_elapsed, _heavy)))
"""


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    # Building the app creates a boto3 client: give it a region and credentials
    # so it never looks further (no network, no metadata service).
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    env.setdefault("AWS_ACCESS_KEY_ID", "bench")
    env.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    # Timed as deployed: with bytecode, as boto3 has it (pip compiled it) and as the
    # Lambda artifact ships ours (scripts/package-serverless.sh). With this variable set
    # (some shells and CI set it) the warm-up round wrote no bytecode, and every timed
    # child compiled each of our modules from source again, which no Lambda does.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _run_once(snippet: str, code: Path | None = None) -> tuple[float, list[str]]:
    """Run `snippet` importing this checkout's modules, or those of `code`."""
    env = _child_env() if code is None else _child_env() | {"PYTHONPATH": str(code)}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD.format(snippet=snippet)],
        cwd=code or ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"cold-path child failed:\n{snippet}\n{out.stderr}")
    elapsed, heavy = eval(out.stdout.strip().splitlines()[-1])  # our own repr() above
    return float(elapsed), list(heavy)


def measure(
    runs: int = 15, *, warmup: bool = True, compare_with: Path | None = None
) -> dict[str, Any]:
    """Median import times (seconds) over `runs` fresh interpreters each, the
    snippets interleaved so that machine noise hits all of them alike. With
    `compare_with` (another checkout), its HTTP entry is timed too, as `before_*`."""
    if runs < 1:
        raise ValueError("runs must be at least 1")
    children: dict[str, tuple[str, Path | None]] = {
        name: (snippet, None) for name, snippet in SNIPPETS.items()
    }
    if compare_with is not None:
        for name in ("lambda_http_s", "lambda_http_app_s"):
            children[f"before_{name}"] = (SNIPPETS[name], compare_with)
    samples: dict[str, list[float]] = {name: [] for name in children}
    heavy: set[str] = set()
    if warmup:  # one unmeasured round fills the OS page cache and the bytecode cache
        for snippet, code in children.values():
            _run_once(snippet, code)
    for _ in range(runs):
        for name, (snippet, code) in children.items():
            elapsed, loaded = _run_once(snippet, code)
            samples[name].append(elapsed)
            if name != "boto3_s" and code is None:
                heavy.update(loaded)
    result: dict[str, Any] = {
        name: round(statistics.median(values), 4) for name, values in samples.items()
    }
    result["ratio"] = round(result["lambda_http_s"] / result["boto3_s"], 2)
    result["app_ratio"] = round(result["lambda_http_app_s"] / result["boto3_s"], 2)
    result["runs"] = runs
    result["python"] = sys.version.split()[0]
    # Anything here means the cold path pulls in host drivers or rq's worker.
    result["heavy_modules_loaded"] = sorted(heavy)
    return result


def main(argv: list[str]) -> int:
    runs = int(argv[0]) if argv else 15
    print(json.dumps(measure(runs), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
