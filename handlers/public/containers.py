from __future__ import annotations

from typing import TypeVar

import falcon
from pydantic import BaseModel

from handlers import shapes, views
from handlers.auth import TENANT
from handlers.body import body_as, path_id
from handlers.declare import responds
from services.deps import Deps
from services.workloads import WorkloadService
from shared.errors import (
    ActionNotAllowed,
    BelowMinimum,
    CapacityExceeded,
    Conflict,
    ContainerLimitReached,
    EggNotAllowed,
    NoHostAvailable,
)
from shared.models import Operation, Workload
from shared.requests import ContainerCreate, ContainerUpdate, LeaseRequest, PowerRequest

M = TypeVar("M", bound=BaseModel)

# What a new allocation, or a larger one, can be refused with.
CHANGE_ERRORS = (BelowMinimum, CapacityExceeded, NoHostAvailable, ActionNotAllowed, Conflict)
UPDATE_ERRORS = (*CHANGE_ERRORS, EggNotAllowed)
CREATE_ERRORS = (*UPDATE_ERRORS, ContainerLimitReached)


class _ContainerResource:
    """What every container route shares: the tenant's key, the workload service,
    reading a body, and answering 202 with the container and its operation."""

    auth = TENANT

    def __init__(self, deps: Deps, workloads: WorkloadService) -> None:
        self._deps = deps
        self._workloads = workloads

    def _body(self, req: falcon.Request, model: type[M]) -> M:
        return body_as(req, model, self._deps.settings.max_body_bytes)

    @staticmethod
    def _accepted(resp: falcon.Response, result: tuple[Workload, Operation]) -> None:
        resp.status = falcon.HTTP_202
        resp.media = views.accepted(*result)


class ContainerCollection(_ContainerResource):
    @responds(200, list[shapes.ContainerView])
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        listed = self._deps.repo.workloads.in_cluster(req.context.principal.cluster_id)
        now = self._deps.clock()
        resp.media = [views.container(w, now) for w in listed if not w.status.is_gone]

    @responds(
        202,
        shapes.AcceptedView,
        body=ContainerCreate,
        errors=CREATE_ERRORS,
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = self._body(req, ContainerCreate)
        self._accepted(resp, self._workloads.create(req.context.principal.cluster_id, body))


class ContainerItem(_ContainerResource):
    @responds(200, shapes.ContainerView)
    def on_get(self, req: falcon.Request, resp: falcon.Response, container_id: str) -> None:
        cluster_id = req.context.principal.cluster_id
        workload = self._workloads.get(cluster_id, path_id(container_id, "Container"))
        resp.media = views.container(workload, self._deps.clock())

    @responds(202, shapes.AcceptedView, body=ContainerUpdate, errors=UPDATE_ERRORS)
    def on_patch(self, req: falcon.Request, resp: falcon.Response, container_id: str) -> None:
        path_id(container_id, "Container")
        body = self._body(req, ContainerUpdate)
        cluster_id = req.context.principal.cluster_id
        self._accepted(resp, self._workloads.update(cluster_id, container_id, body))

    @responds(202, shapes.AcceptedView, errors=(ActionNotAllowed, Conflict))
    def on_delete(self, req: falcon.Request, resp: falcon.Response, container_id: str) -> None:
        path_id(container_id, "Container")
        cluster_id = req.context.principal.cluster_id
        self._accepted(resp, self._workloads.delete(cluster_id, container_id))


class ContainerPower(_ContainerResource):
    @responds(202, shapes.AcceptedView, body=PowerRequest, errors=(ActionNotAllowed, Conflict))
    def on_post(self, req: falcon.Request, resp: falcon.Response, container_id: str) -> None:
        path_id(container_id, "Container")
        signal = self._body(req, PowerRequest).signal
        cluster_id = req.context.principal.cluster_id
        self._accepted(resp, self._workloads.power(cluster_id, container_id, signal))


class ContainerLease(_ContainerResource):
    """POST /containers/:id/lease {"lifetime": S} or {"expires_at": "..."}."""

    @responds(200, shapes.ContainerView, body=LeaseRequest, errors=(ActionNotAllowed, Conflict))
    def on_post(self, req: falcon.Request, resp: falcon.Response, container_id: str) -> None:
        path_id(container_id, "Container")
        body = self._body(req, LeaseRequest)
        workload = self._workloads.lease(req.context.principal.cluster_id, container_id, body)
        resp.media = views.container(workload, self._deps.clock())
