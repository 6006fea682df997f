"""The OpenAPI 3.1 document of the app, built from its own route table: every route
falcon serves, with the declaration of its responder (`handlers.declare`), the
pydantic model of its request body, the TypedDict of its answer (`handlers.shapes`)
and every error code it can give, by status. Nothing is written twice: a route or a
field added to the app is in the document, and a route without a declaration makes
`document()` fail (tests/functional/test_openapi.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import falcon
from falcon.routing import map_http_methods
from pydantic import TypeAdapter

from handlers import routing
from handlers.auth import ANY_KEY, OPERATOR, PUBLIC, TENANT
from handlers.declare import JSON, Declaration, declaration_of
from handlers.idempotency import HEADER as IDEMPOTENCY_HEADER
from handlers.idempotency import MAX_KEY_LENGTH, REPLAYED_HEADER, WRITE_METHODS
from handlers.pages import NEXT_CURSOR_HEADER
from shared.errors import (
    Conflict,
    CorralError,
    Forbidden,
    IdempotencyKeyReused,
    InvalidCluster,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
)

OPENAPI_VERSION = "3.1.0"
REF = "#/components/schemas/{model}"
SECURITY = {
    TENANT: "tenantKey",
    OPERATOR: "operatorKey",
}
SECURITY_SCHEMES = {
    "tenantKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "A cluster API key (`Authorization: Bearer <key>`), made by an "
        "operator with POST /api/v1/clusters/{cluster_id}/keys; tenant routes only.",
    },
    "operatorKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "An operator key (`Authorization: Bearer <key>`); operator "
        "routes under /api/v1 only.",
    },
}
IDEMPOTENCY_PARAMETER = {
    "name": IDEMPOTENCY_HEADER,
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH},
    "description": "Makes the write safe to retry: a repeat with the same key and body "
    "(within 24 hours, from the same API key) answers the first answer, marked "
    "`Idempotent-Replayed: true`, without acting again; the same key with another "
    "method, path or body answers 409 `idempotency_key_reused`.",
}
_PARAM = re.compile(r"{([^}:]+)(?::[^}]*)?}")


@dataclass(frozen=True)
class Route:
    """One (path, method) the app serves, and what answers it."""

    template: str
    method: str
    resource: Any
    responder: Any

    @property
    def auth(self) -> str:
        return str(getattr(self.resource, "auth", OPERATOR))

    @property
    def path(self) -> str:
        """The OpenAPI path: falcon's template less any field converter."""
        return _PARAM.sub(r"{\1}", self.template)

    @property
    def path_params(self) -> list[str]:
        return _PARAM.findall(self.template)


class Undeclared(Exception):
    """Routes whose responders carry no `@responds` declaration."""


def routes(app: falcon.App[Any, Any]) -> Iterator[Route]:
    """Every (template, method) of the app, in the order they were added, OPTIONS and
    falcon's 405 responders left out."""
    for template, resource in routing.routes(app):
        for method, responder in map_http_methods(resource).items():
            yield Route(template, method, resource, responder)


def document(app: falcon.App[Any, Any], *, version: str) -> dict[str, Any]:
    schemas = Schemas()
    paths: dict[str, dict[str, Any]] = {}
    missing: list[str] = []
    for route in sorted(routes(app), key=lambda r: (r.path, r.method)):
        declaration = declaration_of(route.responder)
        if declaration is None:
            missing.append(f"{route.method} {route.template}")
            continue
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(
            route, declaration, schemas
        )
    if missing:
        raise Undeclared("no @responds declaration on: " + ", ".join(missing))
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Corral",
            "version": version,
            "description": "Containers and VMs on your own hosts. Tenant routes under "
            "/api/public/clusters/v1 take a cluster API key; operator routes under /api/v1 "
            'take an operator key. Every error is `{"error": {"code", "message"}}`.',
        },
        "paths": paths,
        "components": {"schemas": schemas.components, "securitySchemes": SECURITY_SCHEMES},
    }


class Schemas:
    """JSON Schemas of shapes and request models, each named type once in components."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {}

    def of(self, shape: Any, *, closed: bool) -> dict[str, Any]:
        schema = TypeAdapter(shape).json_schema(ref_template=REF, mode="serialization")
        for name, found in schema.pop("$defs", {}).items():
            self.components[name] = _closed(found) if closed else found
        if schema.get("type") == "object" and "title" in schema and "properties" in schema:
            name = str(schema["title"])
            self.components[name] = _closed(schema) if closed else schema
            return {"$ref": REF.format(model=name)}
        return schema

    def request(self, model: Any) -> dict[str, Any]:
        schema = TypeAdapter(model).json_schema(ref_template=REF, mode="validation")
        self.components.update(schema.pop("$defs", {}))
        name = str(schema.get("title", model.__name__))
        self.components[name] = schema
        return {"$ref": REF.format(model=name)}


def _closed(schema: dict[str, Any]) -> dict[str, Any]:
    """An answer's object has exactly the fields its shape lists."""
    if schema.get("type") == "object" and "properties" in schema:
        return {**schema, "additionalProperties": False}
    return schema


def _operation(route: Route, declared: Declaration, schemas: Schemas) -> dict[str, Any]:
    doc = (route.responder.__doc__ or route.resource.__doc__ or "").strip()
    operation: dict[str, Any] = {"operationId": _operation_id(route), "tags": [_tag(route)]}
    if doc:  # a responder's docstring, else its resource's
        operation["summary"] = doc.split("\n\n")[0].replace("\n", " ")
        operation["description"] = doc
    if route.auth in SECURITY:
        operation["security"] = [{SECURITY[route.auth]: []}]
    elif route.auth == ANY_KEY:  # either key (or a token for it) will do
        operation["security"] = [{name: []} for name in SECURITY.values()]
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in route.path_params
    ] + [
        {"name": q.name, "in": "query", "required": False, "schema": dict(q.schema),
         "description": q.description}
        for q in declared.query
    ]  # fmt: skip
    if route.auth != PUBLIC and route.method in WRITE_METHODS:
        parameters.append(IDEMPOTENCY_PARAMETER)
    if parameters:
        operation["parameters"] = parameters
    if declared.body is not None:
        operation["requestBody"] = {
            "required": not declared.body_optional,
            "content": {JSON: {"schema": schemas.request(declared.body)}},
        }
    responses = {str(declared.status): _answer(declared.status, declared, schemas)}
    headers = _headers(route, declared)
    if headers:
        responses[str(declared.status)]["headers"] = headers
    for status, shape in declared.also.items():
        responses[str(status)] = _json_answer(status, shape, schemas)
    for status, codes in sorted(_errors(route, declared).items()):
        responses[str(status)] = _error_answer(status, codes)
    operation["responses"] = responses
    return operation


# One server-sent event (before OpenAPI 3.2, a stream's `schema` describes each event):
# `data` the JSON text of what the route documents, `event` its kind, `id` its cursor.
SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "data": {"type": "string"},
        "event": {"type": "string"},
        "id": {"type": "string"},
        "retry": {"type": "integer"},
    },
}


RATE_LIMIT_HEADERS = {
    "RateLimit-Limit": "Requests a minute this API key may make.",
    "RateLimit-Remaining": "Requests it may make now.",
    "RateLimit-Reset": "Seconds until its allowance is whole again.",
}


def _headers(route: Route, declared: Declaration) -> dict[str, Any]:
    """The headers a success answer may carry: rate limits on every keyed route, the
    replay mark on writes, the next page's cursor on listings."""
    headers: dict[str, Any] = {}
    integer = {"type": "integer", "minimum": 0}
    if route.auth != PUBLIC:
        for name, description in RATE_LIMIT_HEADERS.items():
            headers[name] = {"description": description, "schema": integer}
        if route.method in WRITE_METHODS:
            headers[REPLAYED_HEADER] = {
                "description": "`true` when this is the stored answer to an earlier "
                "request with the same Idempotency-Key.",
                "schema": {"type": "string", "enum": ["true"]},
            }
    if any(q.name == "cursor" for q in declared.query):
        headers[NEXT_CURSOR_HEADER] = {
            "description": "The cursor of the next page, while more remain.",
            "schema": {"type": "string"},
        }
    return headers


def _answer(status: int, declared: Declaration, schemas: Schemas) -> dict[str, Any]:
    description = _reason(status)
    if declared.shape is None:
        return {"description": description}
    content: dict[str, Any] = {declared.media_type: {"schema": _schema(declared, schemas)}}
    for media_type in declared.streams:
        content[media_type] = {"schema": SSE_EVENT}
    return {"description": description, "content": content}


def _schema(declared: Declaration, schemas: Schemas) -> dict[str, Any]:
    if declared.media_type != JSON:
        return {"type": "string"}
    return schemas.of(declared.shape, closed=True)


def _json_answer(status: int, shape: Any, schemas: Schemas) -> dict[str, Any]:
    schema = schemas.of(shape, closed=True)
    return {"description": _reason(status), "content": {JSON: {"schema": schema}}}


def _errors(route: Route, declared: Declaration) -> dict[int, set[str]]:
    kinds: list[type[CorralError]] = list(declared.errors)
    if route.auth != PUBLIC:
        kinds += [Unauthorized, ServiceUnavailable, Forbidden, TooManyRequests]
        if route.method in WRITE_METHODS:
            kinds += [IdempotencyKeyReused, Conflict, InvalidInput]
    if route.auth == TENANT:
        kinds.append(InvalidCluster)
    if route.path_params:
        kinds.append(NotFound)
    if declared.body is not None:
        kinds += [InvalidInput, PayloadTooLarge]
    if declared.query:
        kinds.append(InvalidInput)
    kinds += [kind for query in declared.query for kind in query.errors]
    by_status: dict[int, set[str]] = {}
    for kind in kinds:
        by_status.setdefault(kind.status, set()).add(kind.code)
    return by_status


def _error_answer(status: int, codes: set[str]) -> dict[str, Any]:
    envelope = {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "additionalProperties": False,
                "properties": {
                    "code": {"type": "string", "enum": sorted(codes)},
                    "message": {"type": "string"},
                    "details": {},
                },
            }
        },
    }
    return {
        "description": f"{_reason(status)}: " + ", ".join(f"`{c}`" for c in sorted(codes)),
        "content": {JSON: {"schema": envelope}},
    }


def _reason(status: int) -> str:
    return str(getattr(falcon, f"HTTP_{status}", str(status))).partition(" ")[2] or str(status)


def _operation_id(route: Route) -> str:
    words = re.sub(r"[^A-Za-z0-9]+", "_", route.template).strip("_")
    return f"{route.method.lower()}_{words}"


def _tag(route: Route) -> str:
    if route.auth == TENANT:
        return "tenant"
    if route.auth == OPERATOR:
        return "operator"
    return "service"
