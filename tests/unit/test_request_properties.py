"""Every request model, tenant, operator and env alike: whatever JSON a client puts in
whatever field, `shared.requests.parse` (what every handler calls on the raw body)
gives the model, invalid_input or below_minimum, and never another exception.

Bodies are JSON text built here, so they also hold what Python's json module cannot
write: numbers past a double's range (1e400), huge integers, lone surrogates. Each
field gets either any JSON value or a value shaped like its type (dates with odd
offsets, names with control characters, nested models), so validators after the
type check and the models' own checks are reached too."""

from __future__ import annotations

import enum
import functools
import inspect
import json
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from shared import admin_requests, env_requests, requests
from shared.capacity import cores_to_centi
from shared.errors import BelowMinimum, InvalidInput
from shared.requests import Strict, parse

MODULES = (requests, admin_requests, env_requests)


def request_models() -> list[type[Strict]]:
    """Every strict model the request modules define, top-level bodies and parts."""
    found = {
        model
        for module in MODULES
        for _, model in inspect.getmembers(module, inspect.isclass)
        if issubclass(model, Strict) and model is not Strict
    }
    return sorted(found, key=lambda model: model.__name__)


@dataclass(frozen=True)
class Raw:
    """JSON text written into a body as it is."""

    text: str


def to_json(value: Any) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    return json.dumps(value)


# Numbers as JSON writes them, reaching past a double's range both ways (1e400, 1e-400).
NUMBER_LITERALS = st.builds(
    lambda mantissa, exponent: f"{mantissa}e{exponent}",
    st.integers(-(10**20), 10**20),
    st.integers(-400, 400),
)
# Characters a name must not hide: controls, bidirectional overrides, zero-width ones.
HIDDEN = "\x00\t\x1b\x7f\x85\x9b\xad\u200b\u200e\u202e\u2066\ufeff"
TEXT = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=st.sampled_from("ab-_. ü名" + HIDDEN), max_size=20),
    st.sampled_from(
        ["", " ", "x" * 65, "x" * 5000, "ssh-ed25519 AAAA", "unix:///x", "ssh://a@b:1"]
    ),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=False, allow_infinity=False),
    st.builds(Raw, NUMBER_LITERALS),
    st.builds(Raw, st.sampled_from(["NaN", "Infinity", "-Infinity", '"\\ud800"', '"\\udc00x"'])),
    TEXT,
)
ANY_JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
OFFSETS = st.one_of(
    st.just("Z"),
    st.just(""),
    st.builds(
        lambda sign, hours, minutes: f"{sign}{hours:02d}:{minutes:02d}",
        st.sampled_from("+-"),
        st.integers(0, 23),
        st.integers(0, 59),
    ),
)
DATES = st.builds(
    lambda moment, offset: moment.isoformat() + offset,
    st.datetimes(),
    OFFSETS,
) | st.sampled_from(["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "2030-02-30"])


def shaped(annotation: Any) -> st.SearchStrategy[Any]:
    """A JSON value shaped like `annotation` (its bounds ignored: hypothesis' numbers
    reach past them)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return shaped(args[0])
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(shaped(arg) for arg in args))
    if origin is list:
        return st.lists(shaped(args[0]), max_size=4)
    if origin is dict:
        return st.dictionaries(TEXT, shaped(args[1]), max_size=4)
    if origin is typing.Literal:
        return st.sampled_from(args)
    if inspect.isclass(annotation):
        if issubclass(annotation, BaseModel):
            return body_values(annotation)
        if issubclass(annotation, enum.Enum):
            return st.sampled_from([member.value for member in annotation])
        if issubclass(annotation, bool):
            return st.booleans()
        if issubclass(annotation, int):
            return st.integers() | st.sampled_from([-1, 0, 1, 6, 1000, 1001, 65535, 65536])
        if issubclass(annotation, float):
            return st.floats(allow_nan=False) | st.sampled_from([-1.7976931348623157e308, 0.001])
        if issubclass(annotation, str):
            return TEXT
        if annotation.__name__ == "datetime":
            return DATES
    if annotation is type(None):
        return st.none()
    return ANY_JSON


def body_values(model: type[BaseModel]) -> st.SearchStrategy[dict[str, Any]]:
    """A JSON object for `model`: some of its fields, each any JSON value or a value of
    its type, and now and then a field it does not know."""
    fields = {
        name: st.one_of(ANY_JSON, shaped(field.annotation))
        for name, field in model.model_fields.items()
    }
    return st.fixed_dictionaries({}, optional=fields | {"unknown": ANY_JSON})


@functools.cache
def bodies(model: type[BaseModel]) -> st.SearchStrategy[str]:
    return st.one_of(body_values(model), ANY_JSON).map(to_json)


@pytest.mark.parametrize("model", request_models(), ids=lambda model: model.__name__)
@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_any_json_in_any_field_is_a_model_or_a_client_error(
    model: type[BaseModel], data: st.DataObject
) -> None:
    raw = data.draw(bodies(model), label="body")
    try:
        parsed = parse(model, raw)
    except (InvalidInput, BelowMinimum) as refused:
        assert refused.status == 400
        json.dumps(refused.envelope())  # the handler serializes it as it is
    else:
        assert isinstance(parsed, model)
        parsed.model_dump(mode="json")
        for value in leaves(parsed.model_dump()):
            usable(value)


def leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for inner in value.values():
            yield from leaves(inner)
    elif isinstance(value, list | tuple):
        for inner in value:
            yield from leaves(inner)
    else:
        yield value


def usable(value: Any) -> None:
    """What the services do with a parsed value works: a date is written in UTC (one
    without an offset is read as UTC), a float (cores) becomes hundredths."""
    if isinstance(value, datetime):
        (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    elif isinstance(value, float):
        cores_to_centi(value)


def test_the_request_modules_hold_the_bodies_the_handlers_parse() -> None:
    names = {model.__name__ for model in request_models()}
    assert {
        "ContainerCreate",
        "ContainerUpdate",
        "LeaseRequest",
        "PowerRequest",
        "ClusterCreate",
        "ClusterUpdate",
        "KeyCreate",
        "EggCreate",
        "EggUpdate",
        "HostCreate",
        "Instantiate",
        "CreateEnvReq",
    } <= names
