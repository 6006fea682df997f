"""Egg variables: declarations operators may make, values tenants may give."""

from __future__ import annotations

import time

import pytest

from shared.errors import InvalidInput
from shared.variables import (
    EggVariable,
    VariableRules,
    VariableType,
    check_declaration,
    checked_value,
    tenant_values,
    variable_environment,
)


def var(
    env: str = "LEVEL", default: str = "", editable: bool = True, **rules: object
) -> EggVariable:
    return EggVariable(
        name=env.title(),
        env=env,
        default=default,
        user_editable=editable,
        rules=VariableRules(**rules),  # type: ignore[arg-type]
    )


def refused(variable: EggVariable, value: object) -> str:
    with pytest.raises(InvalidInput) as caught:
        checked_value(variable, value)
    assert variable.env in caught.value.message
    return caught.value.message


def test_strings_are_bounded_by_length_and_pattern() -> None:
    name = var("WORLD", pattern=r"[a-z]+", min=2, max=8)
    assert checked_value(name, "world") == "world"
    assert "at least 2" in refused(name, "w")
    assert "at most 8" in refused(name, "abcdefghi")
    assert "pattern" in refused(name, "World")


def test_integers_booleans_and_enums_take_their_json_types_and_canonical_text() -> None:
    players = var("PLAYERS", type=VariableType.INTEGER, min=1, max=100)
    assert checked_value(players, 20) == "20"
    assert checked_value(players, "007") == "7"
    assert "at most 100" in refused(players, 101)
    assert "integer" in refused(players, "1.5")
    assert "not a boolean" in refused(players, True)
    assert "out of range" in refused(players, 10**30)
    flag = var("PVP", type=VariableType.BOOLEAN)
    assert checked_value(flag, True) == "true"
    assert checked_value(flag, "false") == "false"
    assert "true or false" in refused(flag, "yes")
    assert "not an integer" in refused(flag, 1)
    mode = var("MODE", type=VariableType.ENUM, choices=("easy", "hard"))
    assert checked_value(mode, "hard") == "hard"
    assert "one of: easy, hard" in refused(mode, "medium")


@pytest.mark.parametrize("value", ["a\x00b", "line\nbreak", "\u202eevil", "zero\u200bwidth"])
def test_hidden_characters_are_refused(value: str) -> None:
    assert "invisible" in refused(var(), value)


def test_wrong_json_types_and_huge_values_are_refused() -> None:
    assert "string, an integer or a boolean" in refused(var(), 1.5)
    assert "string, an integer or a boolean" in refused(var(), None)
    assert "string, an integer or a boolean" in refused(var(), ["a"])
    assert "longer than" in refused(var(), "x" * 5000)


def test_a_backtracking_pattern_refuses_the_value_within_its_time_limit() -> None:
    evil = var("NAME", pattern=r"(a|aa)+$")
    started = time.monotonic()
    message = refused(evil, "a" * 60 + "!")
    assert time.monotonic() - started < 2
    assert "in time" in message


def test_required_values_must_be_given_and_empty_optional_ones_skip_the_rules() -> None:
    assert "required" in refused(var(required=True), "")
    assert checked_value(var(type=VariableType.INTEGER, min=5), "") == ""


@pytest.mark.parametrize(
    ("variables", "complaint"),
    [
        ([var("A"), var("A")], "declared twice"),
        ([var("SERVER_PORT")], "set by Corral"),
        ([var("DATABASE_URL")], "set by Corral"),
        ([var("PGPASSWORD")], "set by Corral"),
        ([var("1BAD")], "not an environment variable name"),
        ([var(pattern="(unclosed")], "not a regular expression"),
        ([var(type=VariableType.INTEGER, pattern="x")], "pattern applies to string"),
        ([var(type=VariableType.ENUM)], "needs choices"),
        ([var(choices=("a",))], "choices are for enum"),
        ([var(min=5, max=2)], "min is above max"),
        ([var(default="abc", max=2)], "default of variable LEVEL fails"),
        ([var(required=True, editable=False)], "not editable"),
    ],
)
def test_declarations_that_cannot_work_are_refused(
    variables: list[EggVariable], complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        check_declaration(variables)


def test_tenant_values_cover_only_editable_variables_with_defaults_for_the_rest() -> None:
    variables = [var("LEVEL", default="world"), var("SECRET", default="s", editable=False)]
    assert tenant_values(variables, {}) == {"LEVEL": "world"}
    assert tenant_values(variables, {"LEVEL": "nether"}) == {"LEVEL": "nether"}
    with pytest.raises(InvalidInput, match="SECRET is not editable"):
        tenant_values(variables, {"SECRET": "x"})
    with pytest.raises(InvalidInput, match="OTHER is not declared"):
        tenant_values(variables, {"OTHER": "x"})
    # a PATCH keeps what was set before
    assert tenant_values(variables, {}, {"LEVEL": "end"}) == {"LEVEL": "end"}
    # the operator's own variables always take the egg's default
    env = variable_environment(variables, {"LEVEL": "end", "SECRET": "forged"})
    assert env == {"LEVEL": "end", "SECRET": "s"}
