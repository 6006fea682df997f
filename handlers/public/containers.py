from __future__ import annotations

import falcon

from handlers import views
from handlers.auth import TENANT
from handlers.body import body_as, path_id
from handlers.deps import Deps
from handlers.workloads import WorkloadService
from shared.requests import ContainerCreate, ContainerUpdate, LeaseRequest, PowerRequest


class ContainerCollection:
    auth = TENANT

    def __init__(self, deps: Deps, workloads: WorkloadService) -> None:
        self._deps = deps
        self._workloads = workloads

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        listed = self._deps.repo.list_workloads(req.context.principal.cluster_id)
        now = self._deps.clock()
        resp.media = [views.container(w, now) for w in listed if not w.status.is_gone]

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = body_as(req, ContainerCreate, self._deps.settings.max_body_bytes)
        workload, operation = self._workloads.create(req.context.principal.cluster_id, body)
        resp.status = falcon.HTTP_202
        resp.media = views.accepted(workload, operation)


class ContainerItem:
    auth = TENANT

    def __init__(self, deps: Deps, workloads: WorkloadService) -> None:
        self._deps = deps
        self._workloads = workloads

    def on_get(self, req: falcon.Request, resp: falcon.Response, container_id: str) -> None:
        workload = self._workloads.get(
            req.context.principal.cluster_id, path_id(container_id, "Container")
        )
        resp.media = views.container(workload, self._deps.clock())

    def on_patch(self, req: falcon.Request, resp: falcon.Response, container_id: str) -> None:
        path_id(container_id, "Container")
        body = body_as(req, ContainerUpdate, self._deps.settings.max_body_bytes)
        workload, operation = self._workloads.update(
            req.context.principal.cluster_id, container_id, body
        )
        resp.status = falcon.HTTP_202
        resp.media = views.accepted(workload, operation)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, container_id: str) -> None:
        path_id(container_id, "Container")
        workload, operation = self._workloads.delete(req.context.principal.cluster_id, container_id)
        resp.status = falcon.HTTP_202
        resp.media = views.accepted(workload, operation)


class ContainerPower:
    auth = TENANT

    def __init__(self, deps: Deps, workloads: WorkloadService) -> None:
        self._deps = deps
        self._workloads = workloads

    def on_post(self, req: falcon.Request, resp: falcon.Response, container_id: str) -> None:
        path_id(container_id, "Container")
        body = body_as(req, PowerRequest, self._deps.settings.max_body_bytes)
        workload, operation = self._workloads.power(
            req.context.principal.cluster_id, container_id, body.signal
        )
        resp.status = falcon.HTTP_202
        resp.media = views.accepted(workload, operation)


class ContainerLease:
    """POST /containers/:id/lease {"lifetime": S} or {"expires_at": "..."}."""

    auth = TENANT

    def __init__(self, deps: Deps, workloads: WorkloadService) -> None:
        self._deps = deps
        self._workloads = workloads

    def on_post(self, req: falcon.Request, resp: falcon.Response, container_id: str) -> None:
        path_id(container_id, "Container")
        body = body_as(req, LeaseRequest, self._deps.settings.max_body_bytes)
        workload = self._workloads.lease(req.context.principal.cluster_id, container_id, body)
        resp.media = views.container(workload)
