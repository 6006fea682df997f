"""The one builder of DynamoDB expressions: an update's SET/REMOVE clauses and a write's
condition, with every attribute name and value behind a placeholder it generates.

    write = Expression().set("status", "running").add("version", 1)
    write.when_equal("version", 3).when_absent("pending_op")
    table.update(pk, sk, write, on_fail=...)

Names are always placeholders (`#n0`), so reserved words (`status`, `name`, `ttl`) need
no care; a dotted path (`health.sampled_ns`) is a path of names. Values get one
placeholder each (`:v0`). Conditions are ANDed; `when()` takes a clause written with
`name()` and `value()` for the shapes the helpers don't cover (an OR, a range).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from infra.table.attributes import Item, wire_values


class Expression:
    def __init__(self) -> None:
        self._sets: list[str] = []
        self._removes: list[str] = []
        self._conditions: list[str] = []
        self._names: dict[str, str] = {}
        self._values: Item = {}

    # -- placeholders ----------------------------------------------------------

    def name(self, path: str) -> str:
        """The placeholder of an attribute (or a dotted path of attributes)."""
        parts = []
        for attribute in path.split("."):
            placeholder = next((p for p, a in self._names.items() if a == attribute), None)
            if placeholder is None:
                placeholder = f"#n{len(self._names)}"
                self._names[placeholder] = attribute
            parts.append(placeholder)
        return ".".join(parts)

    def value(self, value: Any) -> str:
        placeholder = f":v{len(self._values)}"
        self._values[placeholder] = value
        return placeholder

    # -- the update ------------------------------------------------------------

    def set(self, path: str, value: Any) -> Expression:
        self._sets.append(f"{self.name(path)} = {self.value(value)}")
        return self

    def set_all(self, attributes: Item) -> Expression:
        for path, value in attributes.items():
            self.set(path, value)
        return self

    def set_if_absent(self, path: str, value: Any) -> Expression:
        """Set unless the attribute holds a value already (a first start time)."""
        name = self.name(path)
        self._sets.append(f"{name} = if_not_exists({name}, {self.value(value)})")
        return self

    def add(self, path: str, amount: int) -> Expression:
        """Move a number by `amount` (negative: down) in place."""
        name = self.name(path)
        self._sets.append(f"{name} = {name} + {self.value(amount)}")
        return self

    def count(self, path: str, amount: int) -> Expression:
        """Move a counter that older items may not have yet (absent counts as 0)."""
        name = self.name(path)
        self._sets.append(f"{name} = if_not_exists({name}, {self.value(0)}) + {self.value(amount)}")
        return self

    def remove(self, *paths: str) -> Expression:
        self._removes.extend(self.name(path) for path in paths)
        return self

    # -- the condition ---------------------------------------------------------

    def when(self, clause: str) -> Expression:
        """AND a clause written with this expression's `name()` and `value()`."""
        self._conditions.append(f"({clause})" if " OR " in clause else clause)
        return self

    def when_exists(self, path: str = "pk") -> Expression:
        return self.when(f"attribute_exists({self.name(path)})")

    def when_absent(self, path: str = "pk") -> Expression:
        return self.when(f"attribute_not_exists({self.name(path)})")

    def when_equal(self, path: str, value: Any) -> Expression:
        return self.when(f"{self.name(path)} = {self.value(value)}")

    def when_same(self, path: str, value: Any) -> Expression:
        """Equal to `value`; for None, absent or null (an update writes None as null)."""
        if value is not None:
            return self.when_equal(path, value)
        name = self.name(path)
        return self.when(
            f"attribute_not_exists({name}) OR attribute_type({name}, {self.value('NULL')})"
        )

    def when_contains(self, path: str, value: Any) -> Expression:
        """A list or set attribute that holds `value`."""
        return self.when(f"contains({self.name(path)}, {self.value(value)})")

    def when_below(self, path: str, value: Any) -> Expression:
        return self.when(f"{self.name(path)} < {self.value(value)}")

    def when_below_or_absent(self, path: str, value: Any) -> Expression:
        name = self.name(path)
        return self.when(f"attribute_not_exists({name}) OR {name} < {self.value(value)}")

    def when_at_most(self, path: str, value: Any) -> Expression:
        return self.when(f"{self.name(path)} <= {self.value(value)}")

    def when_at_least(self, path: str, value: Any) -> Expression:
        return self.when(f"{self.name(path)} >= {self.value(value)}")

    def when_in(self, path: str, values: Iterable[Any]) -> Expression:
        listed = ", ".join(self.value(value) for value in values)
        return self.when(f"{self.name(path)} IN ({listed})")

    def when_not_in(self, path: str, values: Iterable[Any]) -> Expression:
        listed = ", ".join(self.value(value) for value in values)
        return self.when(f"NOT ({self.name(path)} IN ({listed}))")

    @property
    def conditional(self) -> bool:
        return bool(self._conditions)

    # -- as request arguments --------------------------------------------------

    def arguments(self) -> dict[str, Any]:
        """UpdateExpression (when it updates), ConditionExpression (when it has one) and
        the placeholders, as UpdateItem, PutItem, DeleteItem and their transaction
        entries take them."""
        arguments: dict[str, Any] = {}
        clauses = []
        if self._sets:
            clauses.append("SET " + ", ".join(self._sets))
        if self._removes:
            clauses.append("REMOVE " + ", ".join(self._removes))
        if clauses:
            arguments["UpdateExpression"] = " ".join(clauses)
        if self._conditions:
            arguments["ConditionExpression"] = " AND ".join(self._conditions)
        if self._names:
            arguments["ExpressionAttributeNames"] = dict(self._names)
        if self._values:
            arguments["ExpressionAttributeValues"] = wire_values(self._values)
        return arguments
