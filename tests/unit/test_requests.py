"""Request bodies: strict JSON types, bounds, names, and where the error is."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from pydantic import BaseModel

from shared.errors import BelowMinimum, InvalidInput
from shared.requests import (
    ContainerCreate,
    ContainerUpdate,
    LeaseRequest,
    PowerRequest,
    ResourceFields,
    parse,
)
from shared.states import PowerSignal

EGG = "0c7d8a4e-0000-4000-8000-000000000000"
M = TypeVar("M", bound=BaseModel)


def parse_value(model: type[M], body: Any) -> M:
    """`body` as a client sends it: JSON text (NaN and Infinity as Python writes them)."""
    return parse(model, json.dumps(body))


def create(**fields: Any) -> ContainerCreate:
    return parse_value(ContainerCreate, {"name": "web", "egg_id": EGG} | fields)


def refused(model: type[BaseModel], body: Any) -> InvalidInput:
    return refused_raw(model, json.dumps(body))


def refused_raw(model: type[BaseModel], raw: bytes | str) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        parse(model, raw)
    return caught.value


def test_a_minimal_create() -> None:
    body = create()
    assert body.name == "web"
    assert body.egg_id == EGG
    assert body.given() == {}


def test_given_lists_only_the_resource_fields_sent() -> None:
    body = create(ram_mb=128, cpu_cores=1.5, ports=0)
    assert body.given() == {"ram_mb": 128, "cpu_cores": 1.5, "ports": 0}


def test_integers_are_accepted_for_cores() -> None:
    assert create(cpu_cores=2).cpu_cores == 2


@pytest.mark.parametrize("cores", [0.01, 0.1, 0.33, 1.25, 99.99, 1024])
def test_cores_with_up_to_two_decimals(cores: float) -> None:
    assert create(cpu_cores=cores).cpu_cores == cores


@pytest.mark.parametrize("cores", [0.001, 0.125, 1.005, 3.14159, 1024.01, 2048])
def test_cores_with_more_decimals_or_too_many(cores: float) -> None:
    error = refused(ContainerCreate, {"name": "w", "egg_id": EGG, "cpu_cores": cores})
    assert "cpu_cores" in error.message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ram_mb", "128"),
        ("ram_mb", True),
        ("ram_mb", 1.5),
        ("ram_mb", [1]),
        ("cpu_cores", "1"),
        ("cpu_cores", False),
        ("io", {"a": 1}),
        ("ports", "1"),
        ("name", 5),
        ("egg_id", 5),
        ("egg_id", ""),
        ("egg_id", "a/b"),
        ("egg_id", "x" * 81),
        ("name", ""),
        ("name", "   "),
        ("name", "x" * 65),
        ("name", "tab\there"),
        ("name", "del\x7f"),
        ("colour", "blue"),
        ("resources", {"ram_mb": 1}),
    ],
)
def test_create_refuses(field: str, value: Any) -> None:
    error = refused(ContainerCreate, {"name": "web", "egg_id": EGG, field: value})
    assert error.code == "invalid_input"
    assert error.status == 400
    assert error.details
    assert error.details[0]["loc"].split(".")[0] == field
    assert field in error.message


@pytest.mark.parametrize(
    ("field", "bound"),
    [("ram_mb", 16 * 1024 * 1024), ("storage_mb", 1024**3), ("io", 1000), ("ports", 1000)],
)
def test_upper_bounds_are_inclusive(field: str, bound: int) -> None:
    assert getattr(create(**{field: bound}), field) == bound
    refused(ContainerCreate, {"name": "w", "egg_id": EGG, field: bound + 1})


def test_negative_allocations_are_below_minimum_whatever_the_egg() -> None:
    # Issue 12, defect 1: the rules check minimums only against an egg that still
    # exists, so the model itself refuses a negative allocation, as below_minimum.
    for body in ({"ram_mb": -1, "ports": -5}, {"cpu_cores": -100, "ram_mb": -100000}):
        with pytest.raises(BelowMinimum) as caught:
            parse_value(ContainerCreate, {"name": "web", "egg_id": EGG} | body)
        assert {d["loc"] for d in caught.value.details} == set(body)
        with pytest.raises(BelowMinimum) as caught:
            parse_value(ContainerUpdate, {"resources": body})
        assert {d["loc"] for d in caught.value.details} == {f"resources.{f}" for f in body}
    assert create(ram_mb=0, ports=0).given() == {"ram_mb": 0, "ports": 0}


def test_a_negative_allocation_beside_a_malformed_field_is_invalid_input() -> None:
    error = refused(ContainerCreate, {"name": "", "egg_id": EGG, "ram_mb": -1})
    assert error.code == "invalid_input"
    assert {d["loc"] for d in error.details} == {"name", "ram_mb"}


@pytest.mark.parametrize("cores", [-1.7976931348623157e308, 1.7976931348623157e308, -1e306])
def test_cores_too_large_for_hundredths_are_refused(cores: float) -> None:
    # Issue 12, defect 2: a hundred times -1.7e308 is -inf (OverflowError, a 500).
    with pytest.raises((InvalidInput, BelowMinimum)):
        parse_value(ContainerCreate, {"name": "web", "egg_id": EGG, "cpu_cores": cores})
    with pytest.raises((InvalidInput, BelowMinimum)):
        parse_value(ContainerUpdate, {"resources": {"cpu_cores": cores}})


@pytest.mark.parametrize(
    "instant",
    ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "9999-12-31T23:00:00-01:00"],
)
def test_expiry_dates_outside_the_calendar_in_utc_are_refused(instant: str) -> None:
    # Issue 12, defect 2: converting these to UTC overflows (OverflowError, a 500).
    assert refused(ContainerCreate, {"name": "w", "egg_id": EGG, "expires_at": instant}).details
    assert refused(LeaseRequest, {"expires_at": instant}).details[0]["loc"] == "expires_at"


def test_expiry_dates_with_an_offset_are_read_in_utc() -> None:
    expires_at = parse_value(LeaseRequest, {"expires_at": "2030-01-01T01:30:00+01:30"}).expires_at
    assert expires_at == datetime(2030, 1, 1, tzinfo=UTC)
    assert expires_at.utcoffset() == timedelta(0)


# Issue 12, defect 9: control (Cc) and invisible formatting (Cf) characters.
HIDDEN = [
    "ad\u202emin\x85x",
    "a\u200bb",
    "bom\ufeff",
    "ne\x85l",
    "x\u2066y",
    "soft\xadhy",
    "c1\x9b",
]


@pytest.mark.parametrize("name", HIDDEN)
def test_names_with_hidden_characters_are_refused(name: str) -> None:
    assert refused(ContainerCreate, {"name": name, "egg_id": EGG}).details[0]["loc"] == "name"
    assert refused(ContainerUpdate, {"name": name}).details[0]["loc"] == "name"


def test_non_finite_numbers_are_refused() -> None:
    for value in (float("nan"), float("inf"), float("-inf")):
        refused(ContainerCreate, {"name": "w", "egg_id": EGG, "cpu_cores": value})
        refused(ContainerCreate, {"name": "w", "egg_id": EGG, "ram_mb": value})


def test_names_are_stripped_and_may_be_unicode() -> None:
    assert create(name="  web  ").name == "web"
    assert create(name="ünïcødé-名前").name == "ünïcødé-名前"
    assert create(name="x" * 64).name == "x" * 64


@pytest.mark.parametrize("body", [[], "web", 1, None, True, [{"name": "web"}]])
def test_only_objects_are_bodies(body: Any) -> None:
    assert refused(ContainerCreate, body).message == "Request body must be a JSON object."


def test_errors_list_every_problem_with_its_location() -> None:
    error = refused(
        ContainerUpdate, {"name": 5, "resources": {"ram_mb": "x", "gpu": 1}, "extra": True}
    )
    locations = {d["loc"] for d in error.details}
    assert locations == {"name", "resources.ram_mb", "resources.gpu", "extra"}
    types = {d["loc"]: d["type"] for d in error.details}
    assert types["extra"] == "extra_forbidden"
    assert all("input" not in d for d in error.details)


def test_missing_fields_are_named() -> None:
    error = refused(ContainerCreate, {})
    assert {d["loc"] for d in error.details} >= {"name", "egg_id"}
    assert {d["type"] for d in error.details} == {"missing"}


# -- update -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [{}, {"name": None}, {"resources": {}}, {"resources": None}, {"resources": {"ram_mb": None}}],
)
def test_an_update_that_asks_for_nothing_is_empty(body: dict[str, Any]) -> None:
    assert parse_value(ContainerUpdate, body).is_empty()


@pytest.mark.parametrize("body", [{"name": "x"}, {"egg_id": EGG}, {"resources": {"ports": 0}}])
def test_an_update_with_something_is_not_empty(body: dict[str, Any]) -> None:
    assert not parse_value(ContainerUpdate, body).is_empty()


def test_update_resources_are_partial() -> None:
    body = parse_value(ContainerUpdate, {"resources": {"ram_mb": 2048, "cpu_cores": 2}})
    assert body.resources is not None
    assert body.resources.given() == {"ram_mb": 2048, "cpu_cores": 2}


def test_update_resources_follow_the_same_rules() -> None:
    refused(ContainerUpdate, {"resources": {"cpu_cores": 0.125}})
    refused(ContainerUpdate, {"resources": {"ram_mb": True}})
    refused(ContainerUpdate, {"resources": []})
    refused(ContainerUpdate, {"ram_mb": 1})


# -- power ------------------------------------------------------------------------------


@pytest.mark.parametrize("signal", list(PowerSignal))
def test_every_signal_parses(signal: PowerSignal) -> None:
    assert parse_value(PowerRequest, {"signal": signal.value}).signal is signal


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"signal": "hibernate"},
        {"signal": "Start"},
        {"signal": 1},
        {"signal": None},
        {"signal": "stop", "force": True},
    ],
)
def test_bad_signals(body: dict[str, Any]) -> None:
    refused(PowerRequest, body)


def test_resource_fields_all_optional() -> None:
    assert parse_value(ResourceFields, {}).given() == {}


# -- the body as bytes: parsed once, by the validator ----------------------------------


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b"{}}", b'{"name": "web"} x', b"\xff\xfe{}", b'{"name": "\xff"}', "\ufeff{}"],
)
def test_what_is_not_json_is_refused_as_such(raw: bytes | str) -> None:
    error = refused_raw(ContainerCreate, raw)
    assert error.message == "Request body is not valid JSON."
    assert error.details is None


@pytest.mark.parametrize("raw", [b"[]", b'"web"', b"1", b"1e999", b"null", b"true", b"[{}]"])
def test_only_json_objects_are_bodies(raw: bytes) -> None:
    assert refused_raw(ContainerCreate, raw).message == "Request body must be a JSON object."


@pytest.mark.parametrize("depth", [300, 5_000])
def test_deep_nesting_is_refused(depth: int) -> None:
    raw = '{"name": ' + "[" * depth + "]" * depth + "}"
    assert refused_raw(ContainerCreate, raw).message == "Request body is nested too deeply."


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"])
def test_non_finite_literals_are_refused_where_they_stand(literal: str) -> None:
    raw = f'{{"name": "w", "egg_id": "{EGG}", "cpu_cores": {literal}}}'
    assert [d["loc"] for d in refused_raw(ContainerCreate, raw).details or []] == ["cpu_cores"]


def test_huge_integers_are_refused_by_their_bound() -> None:
    raw = f'{{"name": "w", "egg_id": "{EGG}", "ram_mb": {"9" * 400}}}'
    error = refused_raw(ContainerCreate, raw)
    assert [(d["loc"], d["type"]) for d in error.details or []] == [("ram_mb", "less_than_equal")]


def test_the_last_of_duplicate_keys_wins() -> None:
    raw = f'{{"name": "first", "egg_id": "{EGG}", "name": "second"}}'
    assert parse(ContainerCreate, raw).name == "second"
