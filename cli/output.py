"""What the CLI prints: rich tables for people, JSON with `--json` for programs;
messages and progress on stderr, so stdout stays the answer alone."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)

# (header, dotted path into each row) for a listing
Columns = Sequence[tuple[str, str]]

CONTAINER_COLUMNS: Columns = (
    ("ID", "id"),
    ("NAME", "name"),
    ("STATUS", "status"),
    ("CPU", "resources.cpu_cores"),
    ("RAM MB", "resources.ram_mb"),
    ("HEALTH", "health.state"),
    ("ALLOCATIONS", "allocations"),
    ("EXPIRES", "expires_at"),
)
EGG_COLUMNS: Columns = (("ID", "id"), ("NAME", "name"), ("ENGINE", "engine"), ("IMAGE", "image"))
OPERATION_COLUMNS: Columns = (
    ("ID", "id"),
    ("KIND", "kind"),
    ("STATUS", "status"),
    ("CONTAINER", "container_id"),
    ("CREATED", "created_at"),
    ("ERROR", "error"),
)


def emit(value: Any, as_json: bool, columns: Columns | None = None) -> None:
    """A listing as a table of `columns`, one record as a table of its fields."""
    if as_json:
        out.print_json(json.dumps(value))
    elif isinstance(value, list) and columns:
        out.print(_listing(value, columns))
    elif isinstance(value, dict):
        out.print(_record(value))
    else:
        out.print(text(value))


def _listing(rows: list[Any], columns: Columns) -> Table:
    # A column the API does not send (an older server) is left out, not shown empty.
    shown = [c for c in columns if any(_has(row, c[1]) for row in rows)] or list(columns)
    table = Table(box=None, header_style="bold")
    for header, _ in shown:
        table.add_column(header)
    for row in rows:
        table.add_row(*(text(pick(row, path)) for _, path in shown))
    return table


def _record(value: dict[str, Any]) -> Table:
    table = Table(box=None, show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for name, field in flatten(value).items():
        table.add_row(name, text(field))
    return table


def flatten(value: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, field in value.items():
        if isinstance(field, dict) and field:
            flat |= flatten(field, f"{prefix}{name}.")
        else:
            flat[f"{prefix}{name}"] = field
    return flat


def pick(row: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(row, dict):
            return None
        row = row.get(part)
    return row


def _has(row: Any, path: str) -> bool:
    head, _, rest = path.partition(".")
    return isinstance(row, dict) and head in row and (not rest or _has(row[head], rest))


def text(value: Any) -> str:
    """A field as a cell: allocations as ip:port, lists joined, nothing as '-'."""
    if value is None or value == []:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(_item(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _item(value: Any) -> str:
    if isinstance(value, dict) and "port" in value:
        star = "*" if value.get("primary") else ""
        return f"{value.get('ip', '')}:{value['port']}{star}"
    return text(value)
