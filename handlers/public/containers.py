from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import falcon
from pydantic import BaseModel

from handlers import shapes, views
from handlers.auth import TENANT, check_new_container
from handlers.body import body_as, path_id
from handlers.declare import Query, responds
from handlers.pages import (
    NAME_PREFIX_QUERY,
    PAGE_QUERIES,
    name_prefix_of,
    page_of,
    set_next,
    table_start,
)
from infra.table import schema
from services.deps import Deps
from services.workloads import WorkloadService
from shared.errors import (
    ActionNotAllowed,
    BelowMinimum,
    CapacityExceeded,
    Conflict,
    ContainerLimitReached,
    EggNotAllowed,
    Forbidden,
    InvalidInput,
    NoHostAvailable,
)
from shared.keys import POWER, KeyScope
from shared.models import Operation, Workload
from shared.requests import ContainerCreate, ContainerUpdate, LeaseRequest, PowerRequest
from shared.states import WorkloadStatus

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


STATUS_QUERY = Query(
    "status",
    {"type": "string", "enum": [s.value for s in WorkloadStatus if not s.is_gone]},
    "Only containers in this status.",
)
EGG_QUERY = Query("egg_id", {"type": "string"}, "Only containers of this egg.")
CONTAINER_QUERIES = (*PAGE_QUERIES, STATUS_QUERY, EGG_QUERY, NAME_PREFIX_QUERY)


def container_filter(req: falcon.Request, scope: KeyScope) -> Callable[[Workload], bool]:
    """Which of a cluster's workloads a listing shows: live ones the key may see, with
    the `status`, `egg_id`, `host_id` and `name_prefix` asked for."""
    status = req.get_param("status")
    if status is not None and status not in STATUS_QUERY.schema["enum"]:
        raise InvalidInput("Query parameter status is not a container status.")
    egg_id, host_id = req.get_param("egg_id"), req.get_param("host_id")
    prefix = name_prefix_of(req)

    def keep(w: Workload) -> bool:
        return (
            not w.status.is_gone
            and scope.allows_container(w.id)
            and (status is None or w.status.value == status)
            and (egg_id is None or w.egg_id == egg_id)
            and (host_id is None or w.host_id == host_id)
            and (prefix is None or w.name.startswith(prefix))
        )

    return keep


def list_containers(
    req: falcon.Request, resp: falcon.Response, deps: Deps, cluster_id: str
) -> list[Workload]:
    """The cluster's containers as a listing asks for them: whole, or a page (the
    tenant's route and the operator's share it)."""
    keep = container_filter(req, req.context.principal.scope)
    page = page_of(req, deps.settings)
    if page is None:
        return [w for w in deps.repo.workloads.in_cluster(cluster_id) if keep(w)]
    start = table_start(page, schema.cluster_pk(cluster_id))
    listed, last = deps.repo.workloads.page_in_cluster(cluster_id, page.limit, start, keep)
    set_next(req, resp, deps.settings, last)
    return listed


class ContainerCollection(_ContainerResource):
    @responds(200, list[shapes.ContainerView], query=CONTAINER_QUERIES)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Every container of the cluster, or a page of them (`limit`, `cursor`),
        optionally only those of a `status`, an `egg_id` or a `name_prefix`."""
        listed = list_containers(req, resp, self._deps, req.context.principal.cluster_id)
        now = self._deps.clock()
        resp.media = [views.container(w, now) for w in listed]

    @responds(
        202,
        shapes.AcceptedView,
        body=ContainerCreate,
        errors=CREATE_ERRORS,
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = self._body(req, ContainerCreate)
        check_new_container(req.context.principal.scope, body.egg_id)
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
        if body.egg_id is not None and not req.context.principal.scope.allows_egg(body.egg_id):
            raise Forbidden("This key is not allowed this egg.")
        cluster_id = req.context.principal.cluster_id
        self._accepted(resp, self._workloads.update(cluster_id, container_id, body))

    @responds(202, shapes.AcceptedView, errors=(ActionNotAllowed, Conflict))
    def on_delete(self, req: falcon.Request, resp: falcon.Response, container_id: str) -> None:
        path_id(container_id, "Container")
        cluster_id = req.context.principal.cluster_id
        self._accepted(resp, self._workloads.delete(cluster_id, container_id))


class ContainerPower(_ContainerResource):
    verb = POWER

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
