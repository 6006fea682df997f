"""Which cancelled transactions are sent again. Real DynamoDB cancels a transaction
that touches an item another transaction holds (`TransactionConflict`); DynamoDB
Local serialises transactions and never does (16 threads of concurrent transactions
and updates on one item never produced one), so the decision is tested here on the
error as DynamoDB sends it over the wire (the shapes of the TransactWriteItems API
reference), parsed by botocore the way its client does."""

from __future__ import annotations

import json
from typing import Any

import botocore.session
from botocore.parsers import create_parser

from infra.table.dynamo import only_transaction_conflicts


def _cancellation(reasons: list[dict[str, Any]]) -> dict[str, Any]:
    """A TransactionCanceledException response, parsed like botocore's endpoint does
    (the generic error, then the modeled fields of the error's own shape)."""
    codes = ", ".join(reason["Code"] for reason in reasons)
    body = {
        "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
        "Message": f"Transaction cancelled, please refer cancellation reasons for specific "
        f"reasons [{codes}]",
        "CancellationReasons": reasons,
    }
    wire = {
        "status_code": 400,
        "headers": {"x-amzn-requestid": "R", "content-type": "application/x-amz-json-1.0"},
        "body": json.dumps(body).encode(),
    }
    # Any: the botocore stubs type an error code as int and an output shape as optional.
    model: Any = botocore.session.get_session().get_service_model("dynamodb")
    parser = create_parser("json")
    parsed: dict[str, Any] = parser.parse(
        wire, model.operation_model("TransactWriteItems").output_shape
    )
    parsed.update(parser.parse(wire, model.shape_for_error_code("TransactionCanceledException")))
    assert parsed["Error"]["Code"] == "TransactionCanceledException"
    return parsed


CONFLICT = {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}
FINE = {"Code": "None"}


def test_a_transaction_cancelled_only_by_conflicts_is_sent_again() -> None:
    reasons = _cancellation([FINE, CONFLICT, FINE, CONFLICT])["CancellationReasons"]

    assert only_transaction_conflicts(reasons)


def test_a_failed_condition_is_never_retried_even_beside_a_conflict() -> None:
    failed = {
        "Code": "ConditionalCheckFailed",
        "Message": "The conditional request failed",
        "Item": {"pk": {"S": "CLUSTER#c"}, "sk": {"S": "META"}},
    }
    reasons = _cancellation([FINE, failed, CONFLICT])["CancellationReasons"]

    assert not only_transaction_conflicts(reasons)


def test_throttling_or_validation_cancellations_are_not_conflicts() -> None:
    for other in (
        {"Code": "ThrottlingError", "Message": "Throughput exceeds the current capacity."},
        {"Code": "ValidationError", "Message": "One or more parameter values were invalid"},
        {"Code": "ProvisionedThroughputExceeded", "Message": "The level was exceeded"},
    ):
        reasons = _cancellation([CONFLICT, other])["CancellationReasons"]
        assert not only_transaction_conflicts(reasons), other


def test_a_cancellation_with_no_conflict_is_not_retried() -> None:
    assert not only_transaction_conflicts(_cancellation([FINE, FINE])["CancellationReasons"])
    assert not only_transaction_conflicts([])
