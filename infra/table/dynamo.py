"""A thin, typed door to DynamoDB: one client, transactions that report which
condition failed, and a counter of calls and consumed capacity (the bill)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from infra.table import schema
from infra.table.attributes import Item, from_wire, to_wire, wire_values
from infra.table.expression import Expression
from shared.errors import Conflict, CorralError, ServiceUnavailable
from shared.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# Raised by a transaction entry's `on_fail` with the item as it was (None if unknown).
FailureHandler = Callable[[Item | None], CorralError]


@dataclass
class TableStats:
    """Calls and consumed capacity units, by operation name. Thread-safe."""

    calls: dict[str, int] = field(default_factory=dict)
    read_units: float = 0.0
    write_units: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, name: str, response: dict[str, Any]) -> None:
        consumed = response.get("ConsumedCapacity") or []
        if isinstance(consumed, dict):
            consumed = [consumed]
        with self._lock:
            self.calls[name] = self.calls.get(name, 0) + 1
            for entry in consumed:
                self.read_units += float(entry.get("ReadCapacityUnits", 0) or 0)
                self.write_units += float(entry.get("WriteCapacityUnits", 0) or 0)
                if not entry.get("ReadCapacityUnits") and not entry.get("WriteCapacityUnits"):
                    units = float(entry.get("CapacityUnits", 0) or 0)
                    if name in {"get_item", "query", "batch_get_item", "scan"}:
                        self.read_units += units
                    else:
                        self.write_units += units

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.read_units = self.write_units = 0.0

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())


@dataclass
class TxEntry:
    request: dict[str, Any]
    on_fail: FailureHandler | None = None


def make_client(settings: Settings) -> DynamoDBClient:
    return boto3.client(
        "dynamodb",
        region_name=settings.aws_region,
        endpoint_url=settings.dynamodb_endpoint,
        config=Config(
            retries={"max_attempts": 4, "mode": "standard"}, connect_timeout=3, read_timeout=10
        ),
    )


class Dynamo:
    """The table, spoken to through the low-level client."""

    def __init__(
        self, client: DynamoDBClient, table_name: str, stats: TableStats | None = None
    ) -> None:
        self.client = client
        self.table = table_name
        self.stats = stats or TableStats()

    def _call(self, name: str, **kwargs: Any) -> dict[str, Any]:
        kwargs.setdefault("ReturnConsumedCapacity", "TOTAL")
        try:
            response: dict[str, Any] = getattr(self.client, name)(**kwargs)
        except ClientError:
            self.stats.record(name, {})
            raise
        except BotoCoreError as exc:
            raise ServiceUnavailable(f"The table did not answer: {type(exc).__name__}.") from exc
        self.stats.record(name, response)
        return response

    def get(self, pk: str, sk: str, *, consistent: bool = True) -> Item | None:
        response = self._call(
            "get_item",
            TableName=self.table,
            Key=wire_values({"pk": pk, "sk": sk}),
            ConsistentRead=consistent,
        )
        wire = response.get("Item")
        return from_wire(wire) if wire else None

    def put_new(self, item: Item, on_exists: CorralError) -> None:
        try:
            self._call(
                "put_item",
                TableName=self.table,
                Item=to_wire(item),
                **Expression().when_absent().arguments(),
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                raise on_exists from exc
            raise

    def update(
        self, pk: str, sk: str, write: Expression, *, on_fail: FailureHandler | None = None
    ) -> Item:
        """Apply `write` and return the item as it is now; a failed condition raises
        `on_fail(item as it was)`."""
        request = self._write_request(pk, sk, write)
        try:
            response = self._call("update_item", ReturnValues="ALL_NEW", **request)
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException" and on_fail is not None:
                old: Any = exc.response.get("Item")
                raise on_fail(from_wire(old) if old else self.get(pk, sk)) from exc
            raise
        return from_wire(response.get("Attributes", {}))

    def delete(
        self,
        pk: str,
        sk: str,
        condition: Expression | None = None,
        *,
        on_fail: FailureHandler | None = None,
    ) -> None:
        try:
            self._call("delete_item", **self._write_request(pk, sk, condition or Expression()))
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException" and on_fail is not None:
                old: Any = exc.response.get("Item")
                raise on_fail(from_wire(old) if old else None) from exc
            raise

    def query(
        self,
        pk: str,
        *,
        sk_prefix: str | None = None,
        sk_at_most: str | None = None,
        index: str | None = None,
        consistent: bool = False,
        page_size: int | None = None,
    ) -> Iterator[Item]:
        """Items of partition `pk` (of the table or of an index `gsi1`/`gsi2`), whose sort
        key begins with `sk_prefix` or sorts at or before `sk_at_most`, page by page."""
        key_attr, sort_attr = (f"{index}pk", f"{index}sk") if index else ("pk", "sk")
        expression = f"{key_attr} = :pk"
        values: Item = {":pk": pk}
        if sk_prefix:
            expression += f" AND begins_with({sort_attr}, :prefix)"
            values[":prefix"] = sk_prefix
        elif sk_at_most:
            expression += f" AND {sort_attr} <= :most"
            values[":most"] = sk_at_most
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": expression,
            "ExpressionAttributeValues": wire_values(values),
        }
        if page_size:
            kwargs["Limit"] = page_size
        if index:
            kwargs["IndexName"] = index
        else:
            kwargs["ConsistentRead"] = consistent
        while True:
            response = self._call("query", **kwargs)
            for wire in response.get("Items", []):
                yield from_wire(wire)
            last = response.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last

    def sharded_index_keys(
        self, partition: Callable[[int], str], sk_at_most: str, limit: int
    ) -> list[tuple[str, str]]:
        """(parent id, own id) of up to `limit` entries of the sparse GSI2 whose sort key
        sorts at or before `sk_at_most`, across its shards (one query per shard)."""
        found: list[tuple[str, str]] = []
        for shard in range(schema.SHARDS):
            for item in self.query(
                partition(shard), sk_at_most=sk_at_most, index=schema.GSI2, page_size=limit
            ):
                found.append((item["pk"].split("#", 1)[1], item["sk"].split("#", 1)[1]))
                if len(found) >= limit:
                    return found
        return found

    def transact(self, entries: list[TxEntry]) -> None:
        """Commit all entries or none. A failed condition raises the entry's own error."""
        try:
            self._call(
                "transact_write_items",
                TransactItems=[entry.request for entry in entries],
            )
        except ClientError as exc:
            if _code(exc) != "TransactionCanceledException":
                raise
            reasons = exc.response.get("CancellationReasons") or []
            for entry, reason in zip(entries, reasons, strict=False):
                if reason.get("Code") == "ConditionalCheckFailed" and entry.on_fail:
                    old = reason.get("Item")
                    raise entry.on_fail(
                        from_wire(dict(old)) if old else self._reread(entry)
                    ) from exc
            if any(r.get("Code") == "TransactionConflict" for r in reasons):
                raise Conflict("A concurrent change touched the same records; retry.") from exc
            raise

    def _reread(self, entry: TxEntry) -> Item | None:
        body = next(iter(entry.request.values()))
        key = from_wire(body["Key"]) if "Key" in body else from_wire(body["Item"])
        return self.get(key["pk"], key["sk"])

    # Builders for transaction entries ------------------------------------

    def tx_put(
        self,
        item: Item,
        condition: Expression | None = None,
        *,
        on_fail: FailureHandler | None = None,
    ) -> TxEntry:
        body: dict[str, Any] = {"TableName": self.table, "Item": to_wire(item)}
        if condition is not None:
            body |= condition.arguments()
            if condition.conditional:
                body["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        return TxEntry({"Put": body}, on_fail)

    def tx_update(
        self, pk: str, sk: str, write: Expression, *, on_fail: FailureHandler | None = None
    ) -> TxEntry:
        return TxEntry({"Update": self._write_request(pk, sk, write)}, on_fail)

    def _write_request(self, pk: str, sk: str, write: Expression) -> dict[str, Any]:
        """A keyed write's arguments, as a call or as a transaction entry takes them; a
        failed condition returns the item as it was, so the error can say why."""
        request: dict[str, Any] = {
            "TableName": self.table,
            "Key": wire_values({"pk": pk, "sk": sk}),
            **write.arguments(),
        }
        if write.conditional:
            request["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        return request


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
