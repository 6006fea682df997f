"""002's instances API over the tenant's containers: `X-API-Key: <tenant key>` (or the
bearer), `/api/instances[/{id}[/pause|/restart|/health]]`.

An instance is a container of the key's cluster. Creating one takes 002's `{"name",
"region"}`: the egg is the cluster's `config.default_egg_id` (an operator setting) and
`region` places it on a host labelled `region=<region>`. Everything else is the same
use case as POST /containers (services/workloads.py): plan, placement, one transaction,
a queued job. Statuses are said in 002's words (STATUS_002).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import falcon

from handlers import shapes, views
from handlers.auth import TENANT, check_new_container
from handlers.body import body_as, path_id
from handlers.declare import responds
from handlers.public.containers import CONTAINER_QUERIES, CREATE_ERRORS, list_containers
from services.deps import Deps
from services.workloads import WorkloadService
from shared.compat_requests import InstanceCreate
from shared.errors import ActionNotAllowed, Conflict, InvalidInput
from shared.keys import POWER
from shared.models import Host, Workload
from shared.requests import ContainerCreate
from shared.states import PowerSignal, WorkloadStatus

REGION_LABEL = "region"

# Corral's statuses in 002's vocabulary (creating|running|paused|stopped|error).
STATUS_002: dict[WorkloadStatus, str] = {
    WorkloadStatus.PROVISIONING: "creating",
    WorkloadStatus.RUNNING: "running",
    WorkloadStatus.PAUSED: "paused",
    WorkloadStatus.STOPPED: "stopped",
    WorkloadStatus.DELETING: "stopped",
    WorkloadStatus.DELETED: "stopped",
    WorkloadStatus.EXPIRED: "stopped",
    WorkloadStatus.ERROR: "error",
}


# What 002's restart means from a status where Corral's restart signal does not apply.
RESTART_FROM: dict[WorkloadStatus, PowerSignal] = {
    WorkloadStatus.PAUSED: PowerSignal.RESUME,
    WorkloadStatus.ERROR: PowerSignal.START,
}


def _unix(moment: datetime) -> int:
    return int(moment.timestamp())


def instance(w: Workload, hosts: dict[str, Host], now: datetime) -> dict[str, Any]:
    """002's instance object (`health` adds Corral's state, stale and reason)."""
    host = hosts.get(w.host_id)
    return {
        "id": w.id,
        "name": w.name,
        "status": STATUS_002[w.status],
        "region": host.labels.get(REGION_LABEL) if host else None,
        "created_at": _unix(w.created_at),
        "updated_at": _unix(w.updated_at),
        "health": views.health(w.health, now),
    }


class _InstanceResource:
    auth = TENANT

    def __init__(self, deps: Deps, workloads: WorkloadService) -> None:
        self._deps = deps
        self._workloads = workloads

    def _hosts(self) -> dict[str, Host]:
        return {h.id: h for h in self._deps.repo.hosts.list()}

    def _live(self, req: falcon.Request, instance_id: str) -> Workload:
        cluster_id = req.context.principal.cluster_id
        return self._workloads.live(cluster_id, path_id(instance_id, "Instance"))


class InstanceCollection(_InstanceResource):
    """GET and POST /api/instances."""

    @responds(200, list[shapes.InstanceView], query=CONTAINER_QUERIES)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        listed = list_containers(req, resp, self._deps, req.context.principal.cluster_id)
        hosts, now = self._hosts(), self._deps.clock()
        resp.media = [instance(w, hosts, now) for w in listed]

    @responds(
        201, shapes.InstanceView, body=InstanceCreate, body_optional=True, errors=CREATE_ERRORS
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        # 002 documents both fields as optional, so the body may be left out entirely.
        body = (
            body_as(req, InstanceCreate, self._deps.settings.max_body_bytes)
            if req.content_length
            else InstanceCreate()
        )
        cluster_id = req.context.principal.cluster_id
        egg_id = self._deps.repo.clusters.get(cluster_id).config.default_egg_id
        if egg_id is None:
            raise InvalidInput(
                "This cluster has no default egg for instances; "
                "ask the operator to set its config.default_egg_id."
            )
        check_new_container(req.context.principal.scope, egg_id)
        name = body.name or f"instance-{self._deps.new_id()[:8]}"
        constraints = {REGION_LABEL: body.region} if body.region else None
        workload, _ = self._workloads.create(
            cluster_id, ContainerCreate(name=name, egg_id=egg_id), constraints
        )
        resp.status = falcon.HTTP_201
        resp.media = instance(workload, self._hosts(), self._deps.clock())


class InstanceItem(_InstanceResource):
    """GET and DELETE /api/instances/{id} (DELETE: 204 once the deletion is accepted)."""

    @responds(200, shapes.InstanceView)
    def on_get(self, req: falcon.Request, resp: falcon.Response, instance_id: str) -> None:
        resp.media = instance(self._live(req, instance_id), self._hosts(), self._deps.clock())

    @responds(204, None, errors=(ActionNotAllowed, Conflict))
    def on_delete(self, req: falcon.Request, resp: falcon.Response, instance_id: str) -> None:
        workload = self._live(req, instance_id)
        self._workloads.delete(workload.cluster_id, workload.id)
        resp.status = falcon.HTTP_204


class InstancePower(_InstanceResource):
    """POST /api/instances/{id}/pause -> {"status": "paused"}, .../restart ->
    {"status": "restarted"}; the change is queued like any power signal. 002's paused
    instance "can be restarted": restarting a paused one resumes it, and an instance in
    error is started again."""

    ACTIONS = ("pause", "restart")
    verb = POWER

    def __init__(self, deps: Deps, workloads: WorkloadService, action: str) -> None:
        super().__init__(deps, workloads)
        self._action = action

    @responds(200, shapes.InstancePowerView, errors=(ActionNotAllowed, Conflict))
    def on_post(self, req: falcon.Request, resp: falcon.Response, instance_id: str) -> None:
        workload = self._live(req, instance_id)
        if self._action == "pause":
            signal, said = PowerSignal.PAUSE, "paused"
        else:
            signal, said = RESTART_FROM.get(workload.status, PowerSignal.RESTART), "restarted"
        self._workloads.power(workload.cluster_id, workload.id, signal)
        resp.media = {"status": said}


class InstanceHealth(_InstanceResource):
    """GET /api/instances/{id}/health: 002's health object."""

    @responds(200, shapes.HealthView)
    def on_get(self, req: falcon.Request, resp: falcon.Response, instance_id: str) -> None:
        resp.media = views.health(self._live(req, instance_id).health, self._deps.clock())
