"""Operator routes for database hosts and managed databases (001)."""

from __future__ import annotations

import falcon

from handlers import shapes, views
from handlers.body import body_as, path_id
from handlers.declare import responds
from handlers.pages import NAME_PREFIX_QUERY, PAGE_QUERIES, paged
from handlers.public.databases import DATABASE_CHANGE_ERRORS, DATABASE_CREATE_ERRORS
from services.databases import DatabaseHostService, DatabaseService
from services.deps import Deps
from shared.admin_requests import (
    BindRequest,
    DatabaseHostCreate,
    DatabaseHostUpdate,
    ManagedDatabaseCreate,
)
from shared.errors import ActionNotAllowed, HostInUse, NotFound


class DatabaseHostCollection:
    """/api/v1/database-hosts"""

    def __init__(self, deps: Deps, hosts: DatabaseHostService) -> None:
        self._deps = deps
        self._hosts = hosts

    @responds(200, list[shapes.DatabaseHostView], query=(*PAGE_QUERIES, NAME_PREFIX_QUERY))
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        hosts = self._deps.repo.database_hosts.list()
        listed = paged(req, resp, self._deps.settings, hosts, name_of=lambda h: h.name)
        resp.media = [views.database_host(h) for h in listed]

    @responds(201, shapes.DatabaseHostView, body=DatabaseHostCreate)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = body_as(req, DatabaseHostCreate, self._deps.settings.max_body_bytes)
        resp.status = falcon.HTTP_201
        resp.media = views.database_host(self._hosts.create(body))


class DatabaseHostItem:
    """/api/v1/database-hosts/{id}"""

    def __init__(self, deps: Deps, hosts: DatabaseHostService) -> None:
        self._deps = deps
        self._hosts = hosts

    @responds(200, shapes.DatabaseHostView)
    def on_get(self, req: falcon.Request, resp: falcon.Response, host_id: str) -> None:
        host = self._deps.repo.database_hosts.get(path_id(host_id, "Database host"))
        resp.media = views.database_host(host)

    @responds(200, shapes.DatabaseHostView, body=DatabaseHostUpdate)
    def on_patch(self, req: falcon.Request, resp: falcon.Response, host_id: str) -> None:
        path_id(host_id, "Database host")
        body = body_as(req, DatabaseHostUpdate, self._deps.settings.max_body_bytes)
        resp.media = views.database_host(self._hosts.update(host_id, body))

    @responds(204, None, errors=(HostInUse,))
    def on_delete(self, req: falcon.Request, resp: falcon.Response, host_id: str) -> None:
        self._hosts.delete(path_id(host_id, "Database host"))
        resp.status = falcon.HTTP_204


class ManagedDatabaseCollection:
    """/api/v1/managed-databases"""

    def __init__(self, deps: Deps, databases: DatabaseService) -> None:
        self._deps = deps
        self._databases = databases

    @responds(200, list[shapes.ManagedDatabaseView], query=(*PAGE_QUERIES, NAME_PREFIX_QUERY))
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        managed = [d for d in self._deps.repo.databases.every() if d.owner_id is None]
        listed = paged(req, resp, self._deps.settings, managed, name_of=lambda d: d.name)
        resp.media = [views.managed_database(d) for d in listed]

    @responds(
        201,
        shapes.ManagedDatabaseView,
        body=ManagedDatabaseCreate,
        errors=(*DATABASE_CREATE_ERRORS, NotFound),
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = body_as(req, ManagedDatabaseCreate, self._deps.settings.max_body_bytes)
        resp.status = falcon.HTTP_201
        resp.media = views.managed_database(self._databases.create(body))


class ManagedDatabaseItem:
    """/api/v1/managed-databases/{id}"""

    def __init__(self, deps: Deps, databases: DatabaseService) -> None:
        self._deps = deps
        self._databases = databases

    @responds(200, shapes.ManagedDatabaseView)
    def on_get(self, req: falcon.Request, resp: falcon.Response, database_id: str) -> None:
        found = self._databases.get(path_id(database_id, "Database"))
        resp.media = views.managed_database(found)

    @responds(204, None, errors=(ActionNotAllowed,))
    def on_delete(self, req: falcon.Request, resp: falcon.Response, database_id: str) -> None:
        self._databases.delete(path_id(database_id, "Database"))
        resp.status = falcon.HTTP_204


class ManagedDatabaseBind:
    """/api/v1/managed-databases/{id}/bind: POST binds to a container, DELETE unbinds;
    both answer 202 with the database and the container's operation."""

    def __init__(self, deps: Deps, databases: DatabaseService) -> None:
        self._deps = deps
        self._databases = databases

    @responds(202, shapes.DatabaseBindingView, body=BindRequest, errors=DATABASE_CHANGE_ERRORS)
    def on_post(self, req: falcon.Request, resp: falcon.Response, database_id: str) -> None:
        path_id(database_id, "Database")
        body = body_as(req, BindRequest, self._deps.settings.max_body_bytes)
        resp.status = falcon.HTTP_202
        resp.media = views.binding(*self._databases.bind(database_id, body))

    @responds(202, shapes.DatabaseBindingView, errors=DATABASE_CHANGE_ERRORS)
    def on_delete(self, req: falcon.Request, resp: falcon.Response, database_id: str) -> None:
        path_id(database_id, "Database")
        resp.status = falcon.HTTP_202
        resp.media = views.binding(*self._databases.unbind(database_id))
