"""A container's databases (000's `databases`): list, create, rotate a password,
delete. The password is in the answer of a create and of a rotation, and nowhere else."""

from __future__ import annotations

import falcon

from handlers import shapes, views
from handlers.auth import TENANT
from handlers.body import body_as, path_id
from handlers.declare import responds
from handlers.pages import NAME_PREFIX_QUERY, PAGE_QUERIES, paged
from services.databases import TenantDatabaseService
from services.deps import Deps
from shared.errors import (
    ActionNotAllowed,
    CapacityExceeded,
    Conflict,
    InvalidInput,
    NoHostAvailable,
)
from shared.requests import TenantDatabaseCreate

# What a change to a database can answer besides not_found (the tenant's and the
# operator's routes alike): it is not in a state for it, or the container is a VM.
DATABASE_CHANGE_ERRORS = (ActionNotAllowed, InvalidInput)
# ...and creating one: no room left, no host with room, its name taken in the cluster.
DATABASE_CREATE_ERRORS = (*DATABASE_CHANGE_ERRORS, CapacityExceeded, NoHostAvailable, Conflict)


class _Resource:
    auth = TENANT

    def __init__(self, deps: Deps, databases: TenantDatabaseService) -> None:
        self._deps = deps
        self._databases = databases


class ContainerDatabaseCollection(_Resource):
    """/containers/{id}/databases"""

    @responds(200, list[shapes.TenantDatabaseView], query=(*PAGE_QUERIES, NAME_PREFIX_QUERY))
    def on_get(self, req: falcon.Request, resp: falcon.Response, container_id: str) -> None:
        cluster_id = req.context.principal.cluster_id
        databases = self._databases.list(cluster_id, path_id(container_id, "Container"))
        listed = paged(req, resp, self._deps.settings, databases, name_of=lambda d: d.name)
        resp.media = [views.tenant_database(d) for d in listed]

    @responds(
        202,
        shapes.TenantDatabaseAcceptedView,
        body=TenantDatabaseCreate,
        errors=DATABASE_CREATE_ERRORS,
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response, container_id: str) -> None:
        path_id(container_id, "Container")
        body = body_as(req, TenantDatabaseCreate, self._deps.settings.max_body_bytes)
        cluster_id = req.context.principal.cluster_id
        database, password, operation = self._databases.create(cluster_id, container_id, body)
        resp.status = falcon.HTTP_202
        resp.media = {
            "database": views.tenant_database(database, password),
            "operation": views.operation(operation),
        }


class ContainerDatabaseItem(_Resource):
    """/containers/{id}/databases/{database_id}"""

    @responds(202, shapes.OperationAcceptedView, errors=DATABASE_CHANGE_ERRORS)
    def on_delete(
        self, req: falcon.Request, resp: falcon.Response, container_id: str, database_id: str
    ) -> None:
        cluster_id = req.context.principal.cluster_id
        operation = self._databases.delete(
            cluster_id, path_id(container_id, "Container"), path_id(database_id, "Database")
        )
        resp.status = falcon.HTTP_202
        resp.media = {"operation": views.operation(operation)}


class ContainerDatabaseRotate(_Resource):
    """/containers/{id}/databases/{database_id}/rotate-password"""

    @responds(202, shapes.TenantDatabaseAcceptedView, errors=DATABASE_CHANGE_ERRORS)
    def on_post(
        self, req: falcon.Request, resp: falcon.Response, container_id: str, database_id: str
    ) -> None:
        cluster_id = req.context.principal.cluster_id
        database, password, operation = self._databases.rotate(
            cluster_id, path_id(container_id, "Container"), path_id(database_id, "Database")
        )
        resp.status = falcon.HTTP_202
        resp.media = {
            "database": views.tenant_database(database, password),
            "operation": views.operation(operation),
        }
