"""A container's databases (000's `databases`): list, create, rotate a password,
delete. The password is in the answer of a create and of a rotation, and nowhere else."""

from __future__ import annotations

import falcon

from handlers import views
from handlers.auth import TENANT
from handlers.body import body_as, path_id
from services.databases import TenantDatabaseService
from services.deps import Deps
from shared.requests import TenantDatabaseCreate


class _Resource:
    auth = TENANT

    def __init__(self, deps: Deps, databases: TenantDatabaseService) -> None:
        self._deps = deps
        self._databases = databases


class ContainerDatabaseCollection(_Resource):
    """/containers/{id}/databases"""

    def on_get(self, req: falcon.Request, resp: falcon.Response, container_id: str) -> None:
        cluster_id = req.context.principal.cluster_id
        listed = self._databases.list(cluster_id, path_id(container_id, "Container"))
        resp.media = [views.tenant_database(d) for d in listed]

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
