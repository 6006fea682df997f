"""What DynamoDB would bill for the calls a boto3 client makes, and how many items
they read.

The repository's TableStats records what the table server answers to
ReturnConsumedCapacity (a local server's word, not a bill), while this meter
applies DynamoDB's published rules to the requests and responses it sees on the
client (botocore events; no application hook):

- reads: 4 KB units of the items returned, rounded up per call, halved when
  eventually consistent (index queries always are);
- writes: 1 KB units of the item written (an update counts its new image);
  transactions: twice that per item, with 1 KB assumed for updates, deletes and
  condition checks, whose size the client cannot see;
- writes to global secondary indexes are billed by DynamoDB too and are left out.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any

from botocore import xform_name

READ_UNIT = 4096
WRITE_UNIT = 1024


def value_size(value: dict[str, Any]) -> int:
    """Approximate stored size of one attribute value in the wire format."""
    kind, body = next(iter(value.items()))
    if kind == "S":
        return len(body.encode())
    if kind == "N":
        digits = body.lstrip("-").replace(".", "").strip("0") or "0"
        return math.ceil(len(digits) / 2) + 1
    if kind == "B":
        return len(body)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in body)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(v) for k, v in body.items())
    if kind == "SS":
        return sum(len(s.encode()) for s in body)
    if kind == "NS":
        return sum(value_size({"N": n}) for n in body)
    if kind == "BS":
        return sum(len(b) for b in body)
    return 0


def item_size(item: dict[str, Any] | None) -> int:
    if not item:
        return 0
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def _read_units(size: int, consistent: bool) -> float:
    units = math.ceil(max(size, 1) / READ_UNIT)
    return float(units if consistent else units / 2)


def _write_units(size: int) -> float:
    return float(math.ceil(max(size, 1) / WRITE_UNIT))


@dataclass
class Reading:
    calls: dict[str, int] = field(default_factory=dict)
    items: dict[str, int] = field(default_factory=dict)  # items read, by operation
    read_units: float = 0.0
    write_units: float = 0.0
    largest_item: int = 0
    bytes_read: int = 0  # the sizes of the items read, as DynamoDB counts them

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    @property
    def items_read(self) -> int:
        return sum(self.items.values())


class TableMeter:
    """Attach to a boto3 DynamoDB client; `reset()` before, `reading` after."""

    def __init__(self, client: Any) -> None:
        self._lock = threading.Lock()
        self.reading = Reading()
        events = client.meta.events
        events.register("before-parameter-build.dynamodb", self._remember_params)
        events.register("after-call.dynamodb", self._after_call)

    def reset(self) -> None:
        with self._lock:
            self.reading = Reading()

    @staticmethod
    def _remember_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["bench_params"] = dict(params)

    def _after_call(self, parsed: dict[str, Any], model: Any, context: dict[str, Any],
                    **_: Any) -> None:  # fmt: skip
        name = xform_name(model.name)
        params = context.get("bench_params", {})
        failed = "Error" in parsed and bool(parsed["Error"].get("Code"))
        read, write, items, largest = self._estimate(name, params, parsed, failed)
        size = sum(map(item_size, _items_read(name, parsed)))
        with self._lock:
            r = self.reading
            r.calls[name] = r.calls.get(name, 0) + 1
            if items:
                r.items[name] = r.items.get(name, 0) + items
            r.read_units += read
            r.write_units += write
            r.largest_item = max(r.largest_item, largest)
            r.bytes_read += size

    @staticmethod
    def _estimate(
        name: str, params: dict[str, Any], parsed: dict[str, Any], failed: bool
    ) -> tuple[float, float, int, int]:
        """(read units, write units, items read, largest item size seen)."""
        if name == "get_item":
            item = parsed.get("Item")
            size = item_size(item)
            return _read_units(size, bool(params.get("ConsistentRead"))), 0.0, int(bool(item)), size
        if name == "batch_get_item":
            items = [i for found in (parsed.get("Responses") or {}).values() for i in found]
            sizes = [item_size(i) for i in items]
            consistent = all(
                bool(request.get("ConsistentRead"))
                for request in params.get("RequestItems", {}).values()
            )
            units = sum(_read_units(size, consistent) for size in sizes)
            return units, 0.0, len(items), max(sizes, default=0)
        if name in ("query", "scan"):
            items = parsed.get("Items") or []
            sizes = [item_size(i) for i in items]
            consistent = bool(params.get("ConsistentRead")) and "IndexName" not in params
            scanned = int(parsed.get("ScannedCount", len(items)))
            return _read_units(sum(sizes), consistent), 0.0, scanned, max(sizes, default=0)
        if name == "put_item":
            size = item_size(params.get("Item"))
            return 0.0, _write_units(size), 0, size
        if name == "update_item":
            size = item_size(parsed.get("Attributes"))
            return 0.0, _write_units(size), 0, size
        if name == "delete_item":
            return 0.0, 1.0, 0, 0
        if name == "transact_write_items":
            units, largest = 0.0, 0
            for entry in params.get("TransactItems", []):
                kind, body = next(iter(entry.items()))
                size = item_size(body.get("Item")) if kind == "Put" else WRITE_UNIT
                largest = max(largest, size if kind == "Put" else 0)
                units += 2 * _write_units(size)
            return 0.0, units, 0, largest
        if name == "batch_write_item":
            units = 0.0
            for requests in params.get("RequestItems", {}).values():
                for request in requests:
                    put = request.get("PutRequest")
                    units += _write_units(item_size(put["Item"]) if put else 1)
            return 0.0, units, 0, 0
        if failed:
            return 0.0, 1.0, 0, 0
        return 0.0, 0.0, 0, 0


def _items_read(name: str, parsed: dict[str, Any]) -> list[dict[str, Any]]:
    """The items a read call returned (none for other calls)."""
    if name == "get_item":
        return [parsed["Item"]] if parsed.get("Item") else []
    if name == "batch_get_item":
        return [i for found in (parsed.get("Responses") or {}).values() for i in found]
    if name in ("query", "scan"):
        return list(parsed.get("Items") or [])
    return []
