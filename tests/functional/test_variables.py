"""Egg variables through the API: operators declare them, tenants set the editable ones
on create and PATCH (each checked), the container shows them, a change is an operation
that recreates the container."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.corral import Api, error_of

VARIABLES = [
    {
        "name": "Level name",
        "env": "LEVEL",
        "default": "world",
        "rules": {"type": "string", "pattern": "[a-z_]+", "max": 16},
    },
    {
        "name": "Players",
        "env": "PLAYERS",
        "default": "10",
        "rules": {"type": "integer", "min": 1, "max": 100},
    },
    {"name": "PvP", "env": "PVP", "default": "true", "rules": {"type": "boolean"}},
    {
        "name": "Mode",
        "env": "MODE",
        "default": "easy",
        "rules": {"type": "enum", "choices": ["easy", "hard"]},
    },
    {"name": "Build", "env": "BUILD", "default": "stable", "user_editable": False},
]


@pytest.fixture
def game(api: Api) -> dict[str, Any]:
    egg = api.make_egg(name="game", variables=VARIABLES)
    api.make_host()
    cluster = api.make_cluster([egg["id"]])
    api.tenant_key = api.make_key(cluster["id"])
    return egg


def test_the_egg_shows_its_variables_to_operators_and_tenants(
    api: Api, game: dict[str, Any]
) -> None:
    assert [v["env"] for v in game["variables"]] == ["LEVEL", "PLAYERS", "PVP", "MODE", "BUILD"]
    level = game["variables"][0]
    assert level["rules"] == {
        "type": "string",
        "required": False,
        "pattern": "[a-z_]+",
        "min": None,
        "max": 16,
        "choices": [],
    }
    assert level["user_editable"] is True
    listed = api.tenant("GET", "/eggs").json
    assert listed[0]["variables"] == game["variables"]


def test_create_takes_values_and_defaults_and_the_container_shows_them(
    api: Api, game: dict[str, Any]
) -> None:
    resp = api.tenant(
        "POST",
        "/containers",
        {
            "name": "srv",
            "egg_id": game["id"],
            "environment": {"LEVEL": "nether", "PLAYERS": 20, "PVP": False},
        },
    )
    assert resp.status_code == 202, resp.text
    shown = resp.json["container"]["environment"]
    assert shown == {"LEVEL": "nether", "PLAYERS": "20", "PVP": "false", "MODE": "easy"}
    again = api.tenant("GET", f"/containers/{resp.json['container']['id']}").json
    assert again["environment"] == shown


@pytest.mark.parametrize(
    ("environment", "named"),
    [
        ({"LEVEL": "Has Spaces"}, "LEVEL"),
        ({"LEVEL": "x" * 17}, "LEVEL"),
        ({"PLAYERS": 0}, "PLAYERS"),
        ({"PLAYERS": "many"}, "PLAYERS"),
        ({"PLAYERS": 1.5}, "PLAYERS"),
        ({"PVP": "maybe"}, "PVP"),
        ({"MODE": "nightmare"}, "MODE"),
        ({"BUILD": "nightly"}, "BUILD"),
        ({"UNKNOWN": "x"}, "UNKNOWN"),
        ({"LEVEL": "a\u0000b"}, "LEVEL"),
        ({"LEVEL": "a\u202eb"}, "LEVEL"),
        ({"LEVEL": None}, "LEVEL"),
        ({"LEVEL": ["a"]}, "LEVEL"),
        ({"LEVEL": "x" * 5000}, "LEVEL"),
    ],
)
def test_a_value_failing_its_rule_is_invalid_input_naming_the_variable(
    api: Api, game: dict[str, Any], environment: dict[str, Any], named: str
) -> None:
    resp = api.tenant(
        "POST", "/containers", {"name": "srv", "egg_id": game["id"], "environment": environment}
    )
    assert error_of(resp) == (400, "invalid_input")
    assert named in resp.json["error"]["message"]
    # nothing was made
    assert api.tenant("GET", "/containers").json == []
    assert api.tenant("GET", "/capacity").json["used"]["containers"] == 0


@pytest.mark.parametrize("environment", ["LEVEL=x", ["LEVEL"], {"": "x"}, {"K" * 200: "x"}])
def test_an_environment_of_the_wrong_shape_is_invalid_input(
    api: Api, game: dict[str, Any], environment: Any
) -> None:
    resp = api.tenant(
        "POST", "/containers", {"name": "srv", "egg_id": game["id"], "environment": environment}
    )
    assert error_of(resp) == (400, "invalid_input")


def test_required_variables_without_default_must_be_given(api: Api) -> None:
    egg = api.make_egg(
        name="needs", variables=[{"name": "Token", "env": "TOKEN", "rules": {"required": True}}]
    )
    api.make_host()
    cluster = api.make_cluster([egg["id"]])
    api.tenant_key = api.make_key(cluster["id"])
    resp = api.tenant("POST", "/containers", {"name": "a", "egg_id": egg["id"]})
    assert error_of(resp) == (400, "invalid_input")
    assert "TOKEN is required" in resp.json["error"]["message"]
    resp = api.tenant(
        "POST", "/containers", {"name": "a", "egg_id": egg["id"], "environment": {"TOKEN": "t"}}
    )
    assert resp.status_code == 202, resp.text


@pytest.mark.parametrize(
    ("variables", "complaint"),
    [
        ([{"name": "x", "env": "SERVER_PORT"}], "set by Corral"),
        ([{"name": "x", "env": "A B"}], "not an environment variable name"),
        ([{"name": "x", "env": "A", "rules": {"pattern": "(["}}], "not a regular expression"),
        ([{"name": "x", "env": "A", "rules": {"type": "enum"}}], "needs choices"),
        (
            [{"name": "x", "env": "A", "rules": {"type": "integer"}, "default": "ten"}],
            "fails its rules",
        ),
        ([{"name": "x", "env": "A"}, {"name": "y", "env": "A"}], "declared twice"),
        ([{"name": "x", "env": "A", "rules": {"type": "float"}}], "type"),
        ([{"name": "x", "env": "A", "default": 5}], "default"),
    ],
)
def test_an_egg_with_unusable_variables_is_refused(
    api: Api, variables: list[dict[str, Any]], complaint: str
) -> None:
    resp = api.admin(
        "POST", "/eggs", {"name": "e", "image": "corral/busybox:latest", "variables": variables}
    )
    assert error_of(resp) == (400, "invalid_input")
    assert complaint in resp.json["error"]["message"]


def test_variables_are_for_docker_eggs(api: Api) -> None:
    resp = api.admin(
        "POST",
        "/eggs",
        {
            "name": "vm",
            "engine": "qemu",
            "image": "disk.qcow2",
            "variables": [{"name": "x", "env": "A"}],
        },
    )
    assert error_of(resp) == (400, "invalid_input")


def test_an_egg_update_replaces_its_variables_checked_the_same_way(
    api: Api, game: dict[str, Any]
) -> None:
    resp = api.admin(
        "PATCH", f"/eggs/{game['id']}", {"variables": [{"name": "x", "env": "PGHOST"}]}
    )
    assert error_of(resp) == (400, "invalid_input")
    resp = api.admin(
        "PATCH", f"/eggs/{game['id']}", {"variables": [{"name": "Seed", "env": "SEED"}]}
    )
    assert resp.status_code == 200, resp.text
    assert [v["env"] for v in resp.json["variables"]] == ["SEED"]
