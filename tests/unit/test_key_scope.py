"""A key's scope: what it allows, and whether another scope is within it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.keys import KeyScope

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_the_default_scope_allows_everything_for_ever() -> None:
    scope = KeyScope()
    assert all(scope.allows_verb(v) for v in ("read", "write", "power", "delete"))
    assert scope.allows_container("any") and scope.allows_egg("any")
    assert not scope.expired(NOW + timedelta(days=10_000))


def test_what_widens_a_scope_is_named() -> None:
    parent = KeyScope(verbs=("read", "write"), container_ids=("a",), expires_at=NOW)
    assert parent.broader_than(parent) == []
    assert (
        KeyScope(verbs=("read",), container_ids=("a",), expires_at=NOW).broader_than(parent) == []
    )
    child = KeyScope(verbs=("read", "delete"), container_ids=None, egg_ids=("e",))
    assert child.broader_than(parent) == ["verb delete", "containers", "expiry"]
    later = KeyScope(verbs=("read",), container_ids=("a", "b"), expires_at=NOW + timedelta(1))
    assert later.broader_than(parent) == ["containers", "expiry"]
    # Narrowing to eggs is narrower than any eggs.
    assert KeyScope(egg_ids=("e",)).broader_than(KeyScope()) == []


def test_an_expired_scope() -> None:
    scope = KeyScope(expires_at=NOW)
    assert scope.expired(NOW) and not scope.expired(NOW - timedelta(seconds=1))
