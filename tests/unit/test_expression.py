"""The one builder of update and condition expressions: every name and value behind a
placeholder it generates, nothing sent that the expressions don't use."""

from __future__ import annotations

from infra.table.expression import Expression


def test_an_update_names_every_attribute_and_value_by_placeholder() -> None:
    write = Expression().set("status", "running").add("version", 1).remove("error")
    write.when_equal("version", 3).when_absent("pending_op")

    assert write.arguments() == {
        "UpdateExpression": "SET #n0 = :v0, #n1 = #n1 + :v1 REMOVE #n2",
        "ConditionExpression": "#n1 = :v2 AND attribute_not_exists(#n3)",
        "ExpressionAttributeNames": {
            "#n0": "status",
            "#n1": "version",
            "#n2": "error",
            "#n3": "pending_op",
        },
        "ExpressionAttributeValues": {
            ":v0": {"S": "running"},
            ":v1": {"N": "1"},
            ":v2": {"N": "3"},
        },
    }


def test_a_dotted_path_is_a_path_of_names_and_an_or_clause_stays_together() -> None:
    write = Expression().set("health", {"sampled_ns": 5}).when_exists()
    stored = write.name("health.sampled_ns")
    write.when(f"attribute_not_exists({stored}) OR {stored} < {write.value(5)}")

    arguments = write.arguments()
    assert arguments["ConditionExpression"] == (
        "attribute_exists(#n1) AND (attribute_not_exists(#n0.#n2) OR #n0.#n2 < :v1)"
    )
    assert arguments["ExpressionAttributeNames"] == {
        "#n0": "health",
        "#n1": "pk",
        "#n2": "sampled_ns",
    }


def test_a_condition_alone_sends_no_update_and_an_empty_one_sends_nothing() -> None:
    condition = Expression().when_exists().when_not_in("status", ["deleted", "expired"])
    arguments = condition.arguments()
    assert "UpdateExpression" not in arguments
    assert arguments["ConditionExpression"] == "attribute_exists(#n0) AND NOT (#n1 IN (:v0, :v1))"
    assert condition.conditional
    assert Expression().arguments() == {}
    assert not Expression().conditional
