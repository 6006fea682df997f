"""A thin, typed door to DynamoDB: one client, transactions that report which
condition failed, and a counter of calls and consumed capacity (the bill)."""

from __future__ import annotations

import functools
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import JSONParser, ResponseParser, ResponseParserFactory

from infra.table import idempotency, schema
from infra.table.attributes import Item, from_wire, to_wire, wire_values
from infra.table.events import EventLog, EventNumberTaken, Numbered
from infra.table.expression import Expression
from shared.errors import Conflict, CorralError, ServiceUnavailable
from shared.events import Change
from shared.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# A transaction cancelled only by TransactionConflict is sent again: at most this many
# sends in all, the pause before the n-th resend drawn from [0, BACKOFF * 2**(n-1)) s
# (full jitter, so that two contenders do not collide again in step).
TRANSACT_ATTEMPTS = 4
# DynamoDB's limit on the items of one transaction.
MAX_TRANSACTION_ITEMS = 100
# The keys one BatchGetItem (`Dynamo.get_many`) takes.
BATCH_GET_KEYS = 100
TRANSACT_BACKOFF_S = 0.01
# Items a page query reads at a time (at least), however few a page keeps.
PAGE_READ = 200

# A commit whose reserved event numbers a reader voided (it took longer than the
# grace) is sent again with new numbers at most this many times.
RENUMBER_ATTEMPTS = 3

# Raised by a transaction entry's `on_fail` with the item as it was (None if unknown).
FailureHandler = Callable[[Item | None], CorralError]


@dataclass
class TableStats:
    """Calls by operation name, and the capacity units they consumed when the Dynamo
    asks for them (`consumed_capacity`). Thread-safe."""

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


# The members of DynamoDB's AttributeValue that botocore's parser returns as they came:
# all but the binary ones (base64 on the wire, bytes once parsed).
_PLAIN_ATTRIBUTE_TYPES = frozenset({"S", "N", "BOOL", "NULL", "SS", "NS"})


def _plain_attribute(value: Any) -> bool:
    """Whether this typed value parses to itself: no binary, no unknown type, at any depth."""
    if not isinstance(value, dict) or len(value) != 1:
        return False
    ((kind, inner),) = value.items()
    if kind == "M":
        return isinstance(inner, dict) and all(_plain_attribute(v) for v in inner.values())
    if kind == "L":
        return isinstance(inner, list) and all(_plain_attribute(v) for v in inner)
    return kind in _PLAIN_ATTRIBUTE_TYPES


class _AttributeValueParser(JSONParser):
    """botocore's JSON parser, less its walk of DynamoDB's typed values: it visits every
    member of the AttributeValue shape for every attribute, nested ones included (most
    of an item read's CPU in the client), to build the very dict the service sent. A
    value holding a binary (or a type this botocore does not know) is parsed as usual."""

    def _handle_map(self, shape: Any, value: Any) -> Any:
        # An item (a map of AttributeValue) as a whole: one check per attribute, no walk
        if shape.value.name == "AttributeValue" and all(map(_plain_attribute, value.values())):
            return value
        return super()._handle_map(shape, value)  # type: ignore[misc]

    def _handle_structure(self, shape: Any, value: Any) -> Any:
        if shape.name == "AttributeValue" and _plain_attribute(value):
            return value
        # (a method of botocore's JSON parser that its type stubs leave out)
        return super()._handle_structure(shape, value)  # type: ignore[misc]


class _ParserFactory(ResponseParserFactory):
    def create_parser(self, protocol_name: str) -> ResponseParser:
        if protocol_name == "json":
            return _AttributeValueParser(**getattr(self, "_defaults", {}))
        parser: ResponseParser = super().create_parser(protocol_name)
        return parser


@functools.cache
def table_session() -> boto3.session.Session:
    """The boto3 session of Corral's DynamoDB clients: botocore's own, with the parser
    above (a botocore component). One per process, so its clients share the loaded
    service model."""
    session = botocore.session.get_session()
    session.register_component("response_parser_factory", _ParserFactory())
    return boto3.session.Session(botocore_session=session)


def make_client(settings: Settings) -> DynamoDBClient:
    """The one DynamoDB client of a process (thread-safe, built once by the app or the
    worker context). Requests are built by our own typed code and the service checks
    every parameter again, so botocore's client-side validation is switched off: it
    costs a walk of every request's shape on the hot path and catches nothing else."""
    return table_session().client(
        "dynamodb",
        region_name=settings.aws_region,
        endpoint_url=settings.dynamodb_endpoint,
        config=Config(
            retries={"max_attempts": 4, "mode": "standard"},
            connect_timeout=3,
            read_timeout=10,
            # One client per process, shared by its threads: a connection for each
            # request it serves at once, or every request past botocore's default
            # of 10 opens a connection and drops it.
            max_pool_connections=max(settings.web_threads, 10),
            tcp_keepalive=True,
            parameter_validation=False,
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
        # Ask the table for the capacity each call consumed (TableStats' units): for the
        # benchmarks, which measure it; every call pays for it in the answer.
        self.consumed_capacity = False
        self.events = EventLog(self)
        # Called with the logs a commit appended to, once it is committed (the queue
        # wakes the followers and the webhook deliveries: services.deps wires it).
        self.on_events: Callable[[set[str]], None] | None = None

    def _call(self, name: str, **kwargs: Any) -> dict[str, Any]:
        if self.consumed_capacity:
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

    def get_many(
        self, keys: list[tuple[str, str]], *, consistent: bool = True
    ) -> dict[tuple[str, str], Item]:
        """Several items (strongly consistent unless told), by (pk, sk); absent items are
        absent from the answer. One round trip (BatchGetItem) per `BATCH_GET_KEYS` keys."""
        found: dict[tuple[str, str], Item] = {}
        for start in range(0, len(keys), BATCH_GET_KEYS):
            found |= self._get_batch(keys[start : start + BATCH_GET_KEYS], consistent)
        return found

    def _get_batch(
        self, keys: list[tuple[str, str]], consistent: bool
    ) -> dict[tuple[str, str], Item]:
        request: dict[str, Any] = {
            self.table: {
                "Keys": [wire_values({"pk": pk, "sk": sk}) for pk, sk in keys],
                "ConsistentRead": consistent,
            }
        }
        found: dict[tuple[str, str], Item] = {}
        while request:  # the service may leave keys unprocessed under load: ask again
            response = self._call("batch_get_item", RequestItems=request)
            for wire in response.get("Responses", {}).get(self.table, []):
                item = from_wire(wire)
                found[(item["pk"], item["sk"])] = item
            request = dict(response.get("UnprocessedKeys") or {})
            if request:
                time.sleep(random.uniform(0, TRANSACT_BACKOFF_S))
        return found

    def put_new(self, item: Item, on_exists: CorralError, events: Sequence[Change] = ()) -> None:
        """Write a new item. With `events`, or an idempotency claim riding on the
        request's first write, as a transaction that carries them."""
        if events or idempotency.riding() is not None:
            entry = self.tx_put(item, Expression().when_absent(), on_fail=lambda _: on_exists)
            self.transact([entry], events)
            return
        if not self.put_alone(item):
            raise on_exists

    def put_alone(self, item: Item) -> bool:
        """Write a new item by itself (never carrying an idempotency claim); whether
        it was written (False: an item with its key exists)."""
        try:
            self._call(
                "put_item",
                TableName=self.table,
                Item=to_wire(item),
                **Expression().when_absent().arguments(),
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def increment(self, pk: str, sk: str, path: str, amount: int) -> int:
        """Add `amount` to a number (absent: 0) by itself, unconditionally (it never
        fails on contention, never carries an idempotency claim); the number after."""
        write = Expression().count(path, amount)
        response = self._call(
            "update_item", ReturnValues="UPDATED_NEW", **self._write_request(pk, sk, write)
        )
        return int(from_wire(response["Attributes"])[path])

    def update(
        self,
        pk: str,
        sk: str,
        write: Expression,
        *,
        on_fail: FailureHandler | None = None,
        events: Sequence[Change] = (),
    ) -> Item:
        """Apply `write` and return the item as it is now; a failed condition raises
        `on_fail(item as it was)`. With `events` (or an idempotency claim riding), a
        transaction that appends them, and a read of the item after it."""
        if events or idempotency.riding() is not None:
            self.transact([self.tx_update(pk, sk, write, on_fail=on_fail)], events)
            return self.get(pk, sk) or {}
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
        events: Sequence[Change] = (),
    ) -> None:
        if events or idempotency.riding() is not None:
            self.transact(
                [self.tx_delete(pk, sk, condition or Expression(), on_fail=on_fail)], events
            )
            return
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
        sk_after: str | None = None,
        index: str | None = None,
        consistent: bool = False,
        page_size: int | None = None,
    ) -> Iterator[Item]:
        """Items of partition `pk` (of the table or of an index `gsi1`/`gsi2`), whose sort
        key begins with `sk_prefix`, sorts at or before `sk_at_most` or after `sk_after`,
        page by page."""
        key_attr, sort_attr = (f"{index}pk", f"{index}sk") if index else ("pk", "sk")
        expression = f"{key_attr} = :pk"
        values: Item = {":pk": pk}
        if sk_prefix:
            expression += f" AND begins_with({sort_attr}, :prefix)"
            values[":prefix"] = sk_prefix
        elif sk_at_most:
            expression += f" AND {sort_attr} <= :most"
            values[":most"] = sk_at_most
        elif sk_after:
            expression += f" AND {sort_attr} > :after"
            values[":after"] = sk_after
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

    def page(
        self,
        pk: str,
        *,
        sk_prefix: str,
        limit: int,
        start: Item | None = None,
        keep: Callable[[Item], bool] = lambda _: True,
        consistent: bool = False,
    ) -> tuple[list[Item], Item | None]:
        """Up to `limit` items of partition `pk` whose sort key begins with `sk_prefix`
        and that `keep` keeps, from after the key `start`; and the key (pk, sk) to start
        the next page after: the last item's, or None when there is no more."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": wire_values({":pk": pk, ":prefix": sk_prefix}),
            "ConsistentRead": consistent,
            # A filter may keep few of the items read: read a good many at a time.
            "Limit": max(limit + 1, PAGE_READ),
        }
        if start is not None:
            kwargs["ExclusiveStartKey"] = wire_values(start)
        found: list[Item] = []
        while True:
            response = self._call("query", **kwargs)
            found.extend(i for i in map(from_wire, response.get("Items", [])) if keep(i))
            last = response.get("LastEvaluatedKey")
            if len(found) > limit or (len(found) == limit and last):
                return found[:limit], {"pk": found[limit - 1]["pk"], "sk": found[limit - 1]["sk"]}
            if not last:
                return found, None
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

    def transact(self, entries: list[TxEntry], events: Sequence[Change] = ()) -> None:
        """Commit all entries or none, and append `events` (the changes they make) to
        their logs in the same transaction, at numbers reserved just before
        (infra.table.events). A failed condition raises the entry's own error, and
        the reserved numbers are voided. A transaction resent for a conflict alone
        (`_transact`) keeps its numbers; one whose number a reader voided meanwhile
        is sent again at new ones.
        """
        if not events:
            self._transact(entries)
            return
        for _ in range(RENUMBER_ATTEMPTS):
            numbered = self.events.reserve(events)
            try:
                # The events last: a change's own failed condition is the one reported.
                self._transact([*entries, *numbered.entries])
            except EventNumberTaken as taken:
                self._void(numbered)
                self.events.numbers.discard(taken.log)
                continue
            except Exception:
                self._void(numbered)
                raise
            self._announce(numbered.logs)
            return
        raise Conflict("The change's event numbers were voided while it waited; retry.")

    def _void(self, numbered: Numbered) -> None:
        """Void the numbers of a commit that did not happen, and wake the readers
        waiting in front of them."""
        if self.events.void(numbered):
            self._announce(numbered.logs)

    def _announce(self, logs: set[str]) -> None:
        if self.on_events is not None:
            self.on_events(logs)

    def _transact(self, entries: list[TxEntry]) -> None:
        """Commit all entries or none. A failed condition raises the entry's own error.

        DynamoDB cancels a transaction that touches an item another transaction holds
        (every reason `None` or `TransactionConflict`); nothing was written and the
        conditions were not the cause, so it is sent again, up to `TRANSACT_ATTEMPTS`
        times after a short jittered pause: the retry re-checks every condition
        against the items as the other transaction left them. Only when the
        conflicts outlast the attempts does the caller see `conflict` (409).

        A request with an Idempotency-Key has its claim ride on its first write
        (infra/table/idempotency.py): the claim goes first, so that when it fails the
        caller learns the key was taken before any other condition's error."""
        claim = idempotency.riding()
        if claim is not None:
            entries = [claim.naming(entries), *entries]
        request = [entry.request for entry in entries]
        for attempt in range(TRANSACT_ATTEMPTS):
            try:
                self._call("transact_write_items", TransactItems=request)
            except ClientError as exc:
                if _code(exc) != "TransactionCanceledException":
                    raise
                reasons = exc.response.get("CancellationReasons") or []
                if (
                    claim is not None
                    and reasons
                    and reasons[0].get("Code") == "ConditionalCheckFailed"
                ):
                    raise idempotency.ClaimTaken() from exc
                for entry, reason in zip(entries, reasons, strict=False):
                    if reason.get("Code") == "ConditionalCheckFailed" and entry.on_fail:
                        old = reason.get("Item")
                        raise entry.on_fail(
                            from_wire(dict(old)) if old else self._reread(entry)
                        ) from exc
                if not only_transaction_conflicts(reasons):
                    raise
                if attempt == TRANSACT_ATTEMPTS - 1:
                    raise Conflict("A concurrent change touched the same records; retry.") from exc
                time.sleep(random.uniform(0, TRANSACT_BACKOFF_S * 2**attempt))
            else:
                if claim is not None:
                    claim.written = True
                return

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

    def tx_delete(
        self, pk: str, sk: str, condition: Expression, *, on_fail: FailureHandler | None = None
    ) -> TxEntry:
        return TxEntry({"Delete": self._write_request(pk, sk, condition)}, on_fail)

    def tx_check(
        self, pk: str, sk: str, condition: Expression, *, on_fail: FailureHandler | None = None
    ) -> TxEntry:
        """A condition on an item the transaction does not write."""
        return TxEntry({"ConditionCheck": self._write_request(pk, sk, condition)}, on_fail)

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


def only_transaction_conflicts(reasons: Sequence[Mapping[str, Any]]) -> bool:
    """Whether a TransactionCanceledException's `CancellationReasons` (one per entry,
    in order; `{"Code": "None"}` for entries that were fine) say only that another
    transaction held some of the items: the one cancellation worth sending again."""
    codes = {str(reason.get("Code")) for reason in reasons}
    return "TransactionConflict" in codes and codes <= {"TransactionConflict", "None"}


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
