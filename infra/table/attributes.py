"""Plain values <-> DynamoDB's typed attribute JSON, and the flat attributes that hold
a resource vector (`used_ram_mb`, `lim_ram_mb`) so that conditions and counters can
address each dimension."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from shared.capacity import Resources
from shared.clock import parse_iso
from shared.errors import Failure

if TYPE_CHECKING:
    from infra.table.expression import Expression

Item = dict[str, Any]

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def to_wire(item: Item) -> dict[str, Any]:
    """A plain item as DynamoDB's typed JSON; None values are left out."""
    return {k: _typed(v) for k, v in item.items() if v is not None}


def wire_values(values: Item) -> dict[str, Any]:
    return {k: _typed(v) for k, v in values.items()}


def _typed(value: Any) -> dict[str, Any]:
    """One value as typed JSON. Strings, whole numbers, booleans, maps and lists (what
    Corral's items hold) are written here, on every request's path; anything else
    (floats, sets, bytes, None) goes through boto3's TypeSerializer, which also
    refuses what DynamoDB cannot hold."""
    kind = type(value)
    if kind is str:
        return {"S": value}
    if kind is int:
        return {"N": str(value)}
    if kind is bool:
        return {"BOOL": value}
    if kind is dict:
        return {"M": {k: _typed(v) for k, v in value.items()}}
    if kind is list or kind is tuple:
        return {"L": [_typed(v) for v in value]}
    return cast(dict[str, Any], _serializer.serialize(_storable(value)))


def _storable(value: Any) -> Any:
    """DynamoDB numbers are decimals: floats go through their shortest repr."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(v) for v in value]
    return value


def from_wire(wire: Mapping[str, Any]) -> Item:
    return {k: _untyped(v) for k, v in wire.items()}


def _untyped(wire: Any) -> Any:
    """One typed JSON value as a plain one: numbers as int when whole, else float.
    The common types are read here (every item of every request goes through this);
    sets and binary through boto3's TypeDeserializer."""
    ((kind, raw),) = wire.items()
    if kind == "S" or kind == "BOOL":
        return raw
    if kind == "N":
        try:
            return int(raw)
        except ValueError:
            return _plain(Decimal(raw))
    if kind == "M":
        return {k: _untyped(v) for k, v in raw.items()}
    if kind == "L":
        return [_untyped(v) for v in raw]
    if kind == "NULL":
        return None
    return _plain(_deserializer.deserialize(wire))


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def resources_attrs(prefix: str, res: Resources) -> Item:
    return {f"{prefix}_{name}": value for name, value in res.items()}


def resources_from(prefix: str, item: Item) -> Resources:
    return Resources(
        **{name: int(item.get(f"{prefix}_{name}", 0)) for name, _ in Resources().items()}
    )


def int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def moment(text: str) -> datetime:
    """A timestamp attribute that every item of its type has."""
    parsed = parse_iso(text)
    assert parsed is not None
    return parsed


FAILURE_ATTRIBUTES = ("error", "error_code", "error_detail")


def failure_attrs(failure: Failure | None) -> Item:
    """A failure as the attributes of the record it failed (all None when none did)."""
    if failure is None:
        return dict.fromkeys(FAILURE_ATTRIBUTES)
    return {"error": failure.message, "error_code": failure.code, "error_detail": failure.detail}


def set_failure(write: Expression, failure: Failure | None) -> Expression:
    """Record `failure` on the record `write` updates, or clear the last one."""
    attrs = failure_attrs(failure)
    write.set_all({k: v for k, v in attrs.items() if v is not None})
    gone = [k for k, v in attrs.items() if v is None]
    return write.remove(*gone) if gone else write


def failure_from(item: Item) -> Failure | None:
    if not item.get("error"):
        return None
    return Failure(item.get("error_code") or "failed", item["error"], item.get("error_detail"))
