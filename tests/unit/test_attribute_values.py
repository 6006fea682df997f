"""The table's typed values take a short path on every request (infra.table.attributes
writes and reads them, infra.table.dynamo's parser keeps them as the service sent
them): each must give exactly what boto3's own serializer, deserializer and botocore's
parser give, for any value an item can hold."""

from __future__ import annotations

import base64
import functools
import json
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.parsers import ResponseParserFactory
from hypothesis import given, settings
from hypothesis import strategies as st

from infra.table.attributes import _plain, _storable, from_wire, to_wire
from infra.table.dynamo import table_session

NAMES = st.text(min_size=1, max_size=6)
SCALARS = (
    st.text(max_size=8)
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False, width=32)
    | st.booleans()
    | st.none()
    | st.binary(max_size=6)
    | st.frozensets(st.text(min_size=1, max_size=4), min_size=1, max_size=3).map(set)
    | st.frozensets(st.integers(-100, 100), min_size=1, max_size=3).map(set)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(NAMES, inner, max_size=3)
    ),
    max_leaves=12,
)
ITEMS = st.dictionaries(NAMES, VALUES, max_size=6)


def boto3_wire(item: dict[str, Any]) -> dict[str, Any]:
    serializer = TypeSerializer()
    return {k: serializer.serialize(_storable(v)) for k, v in item.items() if v is not None}


def boto3_plain(wire: dict[str, Any]) -> dict[str, Any]:
    deserializer = TypeDeserializer()
    return {k: _plain(deserializer.deserialize(v)) for k, v in wire.items()}


@settings(max_examples=150, deadline=None)
@given(ITEMS)
def test_an_item_is_written_and_read_as_boto3_writes_and_reads_it(item: dict[str, Any]) -> None:
    wire = to_wire(item)

    assert wire == boto3_wire(item)
    assert from_wire(wire) == boto3_plain(wire)


def test_numbers_read_back_as_whole_numbers_when_whole_else_floats() -> None:
    wire = {"a": {"N": "1E+2"}, "b": {"N": "2.50"}, "c": {"N": "-7"}, "d": {"N": "0.1"}}

    assert from_wire(wire) == {"a": 100, "b": 2.5, "c": -7, "d": 0.1}
    assert from_wire(to_wire({"f": 0.1})) == {"f": 0.1}
    assert to_wire({"f": 0.1}) == {"f": {"N": "0.1"}}


def _on_the_wire(value: Any) -> Any:
    """A boto3-serialized value as DynamoDB's JSON carries it (binary as base64)."""
    if isinstance(value, dict):
        return {k: _on_the_wire(v) for k, v in value.items()}
    if isinstance(value, list | set):
        return [_on_the_wire(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    if hasattr(value, "value") and isinstance(value.value, bytes):  # boto3's Binary
        return base64.b64encode(value.value).decode()
    if isinstance(value, Decimal):
        return str(value)
    return value


@functools.cache
def get_item_parsers() -> tuple[Any, Any, Any]:
    """GetItem's answer shape, the table client's parser and botocore's stock one."""
    client = table_session().client("dynamodb", region_name="us-east-1")
    shape = client.meta.service_model.operation_model("GetItem").output_shape
    ours = client._endpoint._response_parser_factory.create_parser("json")  # type: ignore[attr-defined]
    return shape, ours, ResponseParserFactory().create_parser("json")


@settings(max_examples=150, deadline=None)
@given(ITEMS)
def test_the_table_client_parses_an_answer_as_botocore_does(item: dict[str, Any]) -> None:
    shape, ours, stock = get_item_parsers()
    body = json.dumps({"Item": _on_the_wire(boto3_wire(item))}).encode()
    answer = {"status_code": 200, "headers": {}, "body": body}

    parsed = ours.parse(answer, shape)

    assert type(ours) is not type(stock)  # the table's clients do take the short path
    assert parsed == stock.parse(answer, shape)
    assert from_wire(parsed.get("Item", {})) == boto3_plain(parsed.get("Item", {}))
