"""What a responder answers, declared beside it for the OpenAPI document:

    @responds(202, shapes.AcceptedView, body=ContainerCreate, errors=(CapacityExceeded,))
    def on_post(self, req, resp): ...

The document (`handlers.openapi`) is built from the app's route table and these
declarations; a route without one fails the tests, and so does an answer the tests
receive that the document does not describe (tests/fixtures/openapi_check.py).

Errors every route of a kind can give are added by the document, not declared here:
401 (and 403 `invalid_cluster` for tenant routes) from authentication, 404 where the
path carries an id, 400 and 413 where there is a body or a query parameter, and 503
when a dependency does not answer. This module is light: it runs on the Lambda cold
path."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, get_args, get_type_hints

from typing_extensions import is_typeddict

from shared.errors import CorralError

if TYPE_CHECKING:
    from pydantic import BaseModel

JSON = "application/json"
EVENT_STREAM = "text/event-stream"
ATTRIBUTE = "__corral_declaration__"

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Query:
    """A query parameter: its name, a JSON Schema for its value, what it means."""

    name: str
    schema: Mapping[str, Any]
    description: str
    # What a value of it can be refused with beyond invalid_input (an id not found).
    errors: tuple[type[CorralError], ...] = ()


@dataclass(frozen=True)
class Declaration:
    status: int
    # A TypedDict, a list of one, any type pydantic can describe, or None for no body.
    shape: Any
    body: type[BaseModel] | None = None
    body_optional: bool = False
    errors: tuple[type[CorralError], ...] = ()
    query: tuple[Query, ...] = ()
    media_type: str = JSON
    # Other media types the same status may answer with (a log follow streams events).
    streams: tuple[str, ...] = ()
    # Other statuses answered with a body of their own (GET /health's 503).
    also: Mapping[int, Any] = field(default_factory=dict)


def responds(
    status: int,
    shape: Any,
    *,
    body: type[BaseModel] | None = None,
    body_optional: bool = False,
    errors: tuple[type[CorralError], ...] = (),
    query: tuple[Query, ...] = (),
    media_type: str = JSON,
    streams: tuple[str, ...] = (),
    also: Mapping[int, Any] | None = None,
) -> Callable[[F], F]:
    declaration = Declaration(
        status, shape, body, body_optional, errors, query, media_type, streams, dict(also or {})
    )

    def mark(responder: F) -> F:
        setattr(responder, ATTRIBUTE, declaration)
        return responder

    return mark


def declaration_of(responder: Callable[..., Any] | None) -> Declaration | None:
    found = getattr(responder, ATTRIBUTE, None)
    return found if isinstance(found, Declaration) else None


def responder_of(resource: Any, method: str) -> Callable[..., Any] | None:
    """The resource's responder for an HTTP method (`on_post` for POST)."""
    responder = getattr(resource, f"on_{method.lower()}", None)
    return responder if callable(responder) else None


# The fields of a once-shown secret (a new key's, a webhook's signing secret, a
# database password): an answer with one is stored sealed, never as it was sent.
SECRET_FIELDS = frozenset({"secret", "password"})


def shows_secret(declaration: Declaration | None) -> bool:
    """Whether the route's declared answer can hold a once-shown secret (unknown
    routes count as holding one)."""
    if declaration is None:
        return True
    known = _SHOWS_SECRET.get(id(declaration))
    if known is None:
        known = _SHOWS_SECRET[id(declaration)] = _holds_secret(declaration.shape, set())
    return known


_SHOWS_SECRET: dict[int, bool] = {}  # by id: declarations live as long as the process


def _holds_secret(shape: Any, seen: set[int]) -> bool:
    if id(shape) in seen:
        return False
    seen.add(id(shape))
    if is_typeddict(shape):
        hints = get_type_hints(shape)
        return any(
            name in SECRET_FIELDS or _holds_secret(hint, seen) for name, hint in hints.items()
        )
    return any(_holds_secret(arg, seen) for arg in get_args(shape))
