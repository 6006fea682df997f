"""Where the CLI finds Corral and its keys: the environment first, then the
`.corral/local.json` that `make run` writes (in this directory or a parent)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOCAL_JSON = Path(".corral") / "local.json"
DEFAULT_URL = "http://127.0.0.1:8080"


@dataclass(frozen=True)
class Config:
    url: str
    key: str | None  # a cluster's API key (the tenant commands)
    operator_key: str | None  # the operator key (`corral admin ...`)
    egg_id: str | None  # the egg `containers create` uses when given none
    source: str  # where the values came from, for error messages


def load(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Config:
    """`CORRAL_URL`, `CORRAL_KEY`, `CORRAL_OPERATOR_KEY` and `CORRAL_EGG` win over the
    file; `CORRAL_CONFIG` names another file than `.corral/local.json`."""
    env = os.environ if env is None else env
    path = Path(env["CORRAL_CONFIG"]) if env.get("CORRAL_CONFIG") else _find(cwd or Path.cwd())
    local = _read(path) if path is not None else {}
    return Config(
        url=(env.get("CORRAL_URL") or _text(local, "url") or DEFAULT_URL).rstrip("/"),
        key=env.get("CORRAL_KEY") or _text(local, "api_key"),
        operator_key=env.get("CORRAL_OPERATOR_KEY") or _text(local, "operator_key"),
        egg_id=env.get("CORRAL_EGG") or _text(local, "egg_id"),
        source=str(path) if path is not None else "the environment",
    )


def _find(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        if (folder / LOCAL_JSON).is_file():
            return folder / LOCAL_JSON
    return None


def _read(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _text(values: dict[str, Any], name: str) -> str | None:
    value = values.get(name)
    return value if isinstance(value, str) and value else None
