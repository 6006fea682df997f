"""Routes whose resource modules are imported when the route is first hit.

The Lambda entry's cold start pays for every module it imports, and the route table
names some sixty resources with their views, shapes and request models. So the table
(handlers.app) names each resource by where it lives, `Later("handlers.public.
containers:ContainerItem", deps, workloads)`, and `LazyRouter` imports and builds it
on the first request that routes to it. A `Later` among another `Later`'s arguments
(a service several resources share) is built once, the first time one of them is.

Everything else sees the real resources: `LazyRouter.find` answers with them (so
middleware reads `resource.auth` as ever), and `routes(app)` walks the table loading
each one (the OpenAPI document, GET /openapi.json, is the one caller that needs them
all)."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator
from typing import Any

import falcon
from falcon.routing import CompiledRouter, map_http_methods, set_default_responders

MethodMap = dict[str, Any]

# Loading is rare (once per resource per process) and may nest (a resource's
# shared service), so one re-entrant lock for all of it is enough.
_loading = threading.RLock()


class Later:
    """An object to build on first use: `target` ("package.module:Name") called with
    `args` and `kwargs`, any `Later` among them built first."""

    def __init__(self, target: str, *args: Any, **kwargs: Any) -> None:
        self.target = target
        self._args = args
        self._kwargs = kwargs
        self._built: Any = None
        self._done = False

    def get(self) -> Any:
        if not self._done:
            with _loading:
                if not self._done:
                    module, _, name = self.target.partition(":")
                    factory = getattr(importlib.import_module(module), name)
                    args = [built(a) for a in self._args]
                    kwargs = {k: built(v) for k, v in self._kwargs.items()}
                    self._built = factory(*args, **kwargs)
                    self._done = True
        return self._built

    def __repr__(self) -> str:
        return f"Later({self.target!r})"


def built(value: Any) -> Any:
    """`value` itself, or what it builds when it is a `Later`."""
    return value.get() if isinstance(value, Later) else value


class LazyRouter(CompiledRouter):
    """falcon's router, taking `Later` resources: it routes to them by their template
    alone and builds each (with its method map) on the first request that finds it."""

    def __init__(self) -> None:
        super().__init__()
        self._method_maps: dict[Later, MethodMap] = {}

    def map_http_methods(self, resource: object, **kwargs: Any) -> MethodMap:
        if isinstance(resource, Later):
            return {}  # not known until it is built; see find()
        return super().map_http_methods(resource, **kwargs)

    def find(
        self, uri: str, req: falcon.Request | None = None
    ) -> tuple[object, MethodMap, dict[str, Any], str | None] | None:
        route = super().find(uri, req)
        if route is None:
            return None
        resource, _, params, template = route
        if isinstance(resource, Later):
            return resource.get(), self._method_map(resource), params, template
        return route

    def _method_map(self, later: Later) -> MethodMap:
        method_map = self._method_maps.get(later)
        if method_map is None:
            method_map = dict(map_http_methods(later.get()))
            set_default_responders(method_map)
            self._method_maps[later] = method_map
        return method_map


def routes(app: falcon.App[Any, Any]) -> Iterator[tuple[str, object]]:
    """(uri template, resource) for every route of `app`, in the order they were added,
    each resource built."""
    stack = list(reversed(app._router._roots))  # falcon has no public walk
    while stack:
        node = stack.pop()
        if node.resource is not None:
            yield str(node.uri_template), built(node.resource)
        stack.extend(reversed(node.children))


def load_all(app: falcon.App[Any, Any]) -> None:
    """Build every route's resource now: for a server process, which serves them all
    and should not make its first requests wait for the imports."""
    for _ in routes(app):
        pass
