"""Where `corral` finds Corral and its keys: the environment over `.corral/local.json`,
found in the working directory or a parent."""

from __future__ import annotations

import json
from pathlib import Path

from cli.config import DEFAULT_URL, load


def write_local_json(root: Path) -> None:
    (root / ".corral").mkdir()
    (root / ".corral" / "local.json").write_text(
        json.dumps(
            {
                "url": "http://127.0.0.1:8081/",
                "api_key": "ck_file",
                "operator_key": "op_file",
                "egg_id": "egg-file",
            }
        )
    )


def test_make_runs_local_json_is_found_from_a_subdirectory(tmp_path: Path) -> None:
    write_local_json(tmp_path)
    (tmp_path / "deep" / "er").mkdir(parents=True)
    config = load({}, tmp_path / "deep" / "er")
    assert (config.url, config.key, config.operator_key, config.egg_id) == (
        "http://127.0.0.1:8081",
        "ck_file",
        "op_file",
        "egg-file",
    )


def test_the_environment_wins_over_the_file(tmp_path: Path) -> None:
    write_local_json(tmp_path)
    env = {"CORRAL_URL": "https://corral.example", "CORRAL_KEY": "ck_env"}
    config = load(env, tmp_path)
    assert (config.url, config.key, config.operator_key) == (
        "https://corral.example",
        "ck_env",
        "op_file",
    )


def test_without_a_file_or_environment(tmp_path: Path) -> None:
    config = load({}, tmp_path)
    assert (config.url, config.key, config.operator_key) == (DEFAULT_URL, None, None)


def test_corral_config_names_another_file(tmp_path: Path) -> None:
    write_local_json(tmp_path)
    other = tmp_path / "elsewhere.json"
    other.write_text(json.dumps({"api_key": "ck_other"}))
    assert load({"CORRAL_CONFIG": str(other)}, tmp_path).key == "ck_other"
