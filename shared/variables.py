"""Egg variables (Pterodactyl's startup variables): what an egg declares, the rules a
value must meet, and the values a workload runs with. Pure decisions, no I/O.

A variable is set in the container's environment as `env`. Tenants set the
user-editable ones (`environment` on create and PATCH); every other variable, and every
one a tenant left unset, takes the egg's default.

Patterns come from operators and values from tenants, so a pattern is matched with the
`regex` module under a time limit: a pattern that backtracks catastrophically on some
value refuses that value instead of holding a worker thread.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from shared.errors import InvalidInput

# The names Corral itself sets in a container's environment (allocations, bound
# databases): an egg variable may not take them.
RESERVED_PREFIXES = ("SERVER_", "PG", "MYSQL_", "CORRAL_")
RESERVED_NAMES = frozenset({"DATABASE_URL"})
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
MAX_VALUE_LENGTH = 4096
MAX_VARIABLES = 64
MAX_PATTERN_LENGTH = 512
PATTERN_TIMEOUT_S = 0.05
INTEGER_LIMIT = 10**18
BOOLEAN_VALUES = {"true": "true", "false": "false"}


class VariableType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    ENUM = "enum"


@dataclass(frozen=True)
class VariableRules:
    """What a value must be. `min`/`max` bound a string's length or an integer's value."""

    type: VariableType = VariableType.STRING
    required: bool = False
    pattern: str | None = None
    min: int | None = None
    max: int | None = None
    choices: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type.value,
            "required": self.required,
            "pattern": self.pattern,
            "min": self.min,
            "max": self.max,
            "choices": list(self.choices),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VariableRules:
        def number(key: str) -> int | None:
            return int(data[key]) if data.get(key) is not None else None

        return cls(
            type=VariableType(data.get("type", VariableType.STRING.value)),
            required=bool(data.get("required", False)),
            pattern=data.get("pattern"),
            min=number("min"),
            max=number("max"),
            choices=tuple(data.get("choices") or ()),
        )


@dataclass(frozen=True)
class EggVariable:
    name: str
    env: str
    default: str = ""
    description: str = ""
    user_editable: bool = True
    rules: VariableRules = field(default_factory=VariableRules)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "env": self.env,
            "description": self.description,
            "default": self.default,
            "user_editable": self.user_editable,
            "rules": self.rules.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EggVariable:
        return cls(
            name=data["name"],
            env=data["env"],
            default=data.get("default", ""),
            description=data.get("description", ""),
            user_editable=bool(data.get("user_editable", True)),
            rules=VariableRules.from_json(data.get("rules") or {}),
        )


# -- checking a declaration (operators, at egg creation) -----------------------------


def check_env_name(env: str) -> str:
    if not ENV_NAME.match(env):
        raise ValueError(f"{env!r} is not an environment variable name (A-Z, 0-9, _)")
    if env in RESERVED_NAMES or env.upper().startswith(RESERVED_PREFIXES):
        raise ValueError(f"{env!r} is set by Corral itself (SERVER_*, DATABASE_URL, PG*, MYSQL_*)")
    return env


def check_declaration(variables: Sequence[EggVariable]) -> None:
    """An egg's variables make sense: distinct env names, usable rules, valid defaults.
    Raises ValueError with the variable named."""
    seen: set[str] = set()
    for var in variables:
        if var.env in seen:
            raise ValueError(f"variable env {var.env} is declared twice")
        seen.add(var.env)
        check_env_name(var.env)
        rules = var.rules
        if rules.pattern is not None:
            if rules.type != VariableType.STRING:
                raise ValueError(f"variable {var.env}: a pattern applies to string variables")
            compile_pattern(rules.pattern, var.env)
        if rules.type == VariableType.ENUM and not rules.choices:
            raise ValueError(f"variable {var.env}: an enum needs choices")
        if rules.choices and rules.type != VariableType.ENUM:
            raise ValueError(f"variable {var.env}: choices are for enum variables")
        if rules.type in (VariableType.BOOLEAN, VariableType.ENUM) and (
            rules.min is not None or rules.max is not None
        ):
            raise ValueError(f"variable {var.env}: min and max are for strings and integers")
        if rules.min is not None and rules.max is not None and rules.min > rules.max:
            raise ValueError(f"variable {var.env}: min is above max")
        if rules.type == VariableType.STRING and (rules.min or 0) < 0:
            raise ValueError(f"variable {var.env}: a length cannot be negative")
        if rules.required and not var.default and not var.user_editable:
            raise ValueError(f"variable {var.env} is required, has no default and is not editable")
        if var.default:
            try:
                checked_value(var, var.default, default=True)
            except InvalidInput as exc:
                raise ValueError(
                    f"the default of variable {var.env} fails its rules: {exc}"
                ) from exc


def compile_pattern(pattern: str, env: str) -> Any:
    import regex  # the handler's cold path pays for it only when an egg has a pattern

    try:
        return regex.compile(pattern)
    except (regex.error, OverflowError, RecursionError) as exc:
        raise ValueError(f"variable {env}: pattern is not a regular expression: {exc}") from exc


# -- checking a value (tenants, on create and PATCH) -------------------------------


def checked_value(var: EggVariable, raw: object, *, default: bool = False) -> str:
    """The value `raw` (a JSON string, integer or boolean) as the environment holds it,
    or invalid_input naming the variable. An empty value is allowed unless required."""
    where = f"Variable {var.env}" + (" (its default)" if default else "")
    rules = var.rules
    value = _as_text(raw, var, where)
    if len(value) > MAX_VALUE_LENGTH:
        raise InvalidInput(f"{where} is longer than {MAX_VALUE_LENGTH} characters.")
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in value):
        raise InvalidInput(f"{where} holds control or invisible formatting characters.")
    if value == "":
        if rules.required:
            raise InvalidInput(f"{where} is required.")
        return value
    if rules.type == VariableType.INTEGER:
        if not re.fullmatch(r"-?[0-9]{1,18}", value):
            raise InvalidInput(f"{where} must be an integer.")
        _bounds(int(value), rules, where, "")
        return str(int(value))
    if rules.type == VariableType.BOOLEAN:
        if value not in BOOLEAN_VALUES:
            raise InvalidInput(f"{where} must be true or false.")
        return BOOLEAN_VALUES[value]
    if rules.type == VariableType.ENUM:
        if value not in rules.choices:
            raise InvalidInput(f"{where} must be one of: {', '.join(rules.choices)}.")
        return value
    _bounds(len(value), rules, where, " characters long")
    if rules.pattern is not None and not _matches(rules.pattern, value, var.env):
        raise InvalidInput(f"{where} does not match the pattern {rules.pattern}.")
    return value


def _as_text(raw: object, var: EggVariable, where: str) -> str:
    if isinstance(raw, bool):
        if var.rules.type != VariableType.BOOLEAN:
            raise InvalidInput(f"{where} takes a {var.rules.type.value}, not a boolean.")
        return "true" if raw else "false"
    if isinstance(raw, int):
        if var.rules.type != VariableType.INTEGER:
            raise InvalidInput(f"{where} takes a {var.rules.type.value}, not an integer.")
        if abs(raw) >= INTEGER_LIMIT:
            raise InvalidInput(f"{where} is out of range.")
        return str(raw)
    if isinstance(raw, str):
        return raw
    raise InvalidInput(f"{where} must be a string, an integer or a boolean.")


def _bounds(number: int, rules: VariableRules, where: str, unit: str) -> None:
    if rules.min is not None and number < rules.min:
        raise InvalidInput(f"{where} must be at least {rules.min}{unit}.")
    if rules.max is not None and number > rules.max:
        raise InvalidInput(f"{where} must be at most {rules.max}{unit}.")


def _matches(pattern: str, value: str, env: str) -> bool:
    try:
        return compile_pattern(pattern, env).fullmatch(value, timeout=PATTERN_TIMEOUT_S) is not None
    except TimeoutError as exc:
        raise InvalidInput(
            f"Variable {env} could not be checked against its pattern in time; "
            "give a shorter or simpler value."
        ) from exc


# -- a workload's values -----------------------------------------------------------


def editable(variables: Sequence[EggVariable]) -> dict[str, EggVariable]:
    return {var.env: var for var in variables if var.user_editable}


def tenant_values(
    variables: Sequence[EggVariable],
    given: Mapping[str, object],
    current: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The values of an egg's user-editable variables once `given` is applied over
    `current` (a workload's values; None on create): each checked against its rules,
    the rest at their defaults. Values of variables the egg no longer declares (an egg
    switch) are dropped; a kept value that fails the new egg's rules is refused."""
    allowed = editable(variables)
    by_env = {var.env: var for var in variables}
    for env in given:
        if env not in by_env:
            raise InvalidInput(f"Variable {env} is not declared by the egg.")
        if env not in allowed:
            raise InvalidInput(f"Variable {env} is not editable.")
    values: dict[str, str] = {}
    for env, var in allowed.items():
        if env in given:
            values[env] = checked_value(var, given[env])
        elif current is not None and env in current:
            values[env] = checked_value(var, current[env])
        else:
            values[env] = checked_value(var, var.default, default=bool(var.default))
    return values


def variable_environment(
    variables: Sequence[EggVariable], values: Mapping[str, str]
) -> dict[str, str]:
    """Every declared variable's value: the workload's for user-editable ones, the
    default for the rest (and for any the workload has no value for)."""
    return {
        var.env: values.get(var.env, var.default) if var.user_editable else var.default
        for var in variables
    }
