"""Environments (003) under /api/v1/envs, and single VMs under /api/v1/vms/{id}.

Env ids are names, unique within their cluster; where one id exists in several
clusters, `?cluster_id=` says which is meant. Decisions live in `services/envs.py`.
"""

from __future__ import annotations

from collections import defaultdict

import falcon

from handlers import shapes, views
from handlers.body import body_as, path_id
from handlers.declare import Query, responds
from handlers.pages import PAGE_QUERIES, paged
from handlers.public.containers import CREATE_ERRORS
from services.deps import Deps
from services.envs import ENV_SIGNALS, EnvService
from shared.env_requests import CreateEnvReq
from shared.errors import ActionNotAllowed, Conflict, InvalidCluster, NotFound
from shared.keys import POWER
from shared.models import Engine, Workload
from shared.requests import LeaseRequest

CLUSTER_QUERY = Query(
    "cluster_id",
    {"type": "string"},
    "The cluster the id belongs to, where ids repeat.",
    errors=(NotFound,),
)
ENV_CREATE_ERRORS = (*CREATE_ERRORS, InvalidCluster, NotFound)


def _cluster_param(req: falcon.Request) -> str | None:
    value = req.get_param("cluster_id")
    return None if value is None else path_id(value, "Cluster")


# -- resources ----------------------------------------------------------------------


class EnvCollection:
    """GET /api/v1/envs[?cluster_id=] and POST /api/v1/envs."""

    def __init__(self, deps: Deps, envs: EnvService) -> None:
        self._deps = deps
        self._envs = envs

    @responds(200, list[shapes.EnvironmentView], query=(CLUSTER_QUERY, *PAGE_QUERIES))
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        repo = self._deps.repo
        envs = paged(req, resp, self._deps.settings, repo.envs.list(_cluster_param(req)))
        by_cluster: dict[str, list[Workload]] = defaultdict(list)
        for cluster_id in {e.cluster_id for e in envs}:
            by_cluster[cluster_id] = repo.workloads.in_cluster(cluster_id)
        shown = [views.environment(e, by_cluster[e.cluster_id]) for e in envs]
        resp.media = [e for e in shown if e["status"] not in ("deleted", "expired")]

    @responds(202, shapes.EnvironmentAcceptedView, body=CreateEnvReq, errors=ENV_CREATE_ERRORS)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = body_as(req, CreateEnvReq, self._deps.settings.max_body_bytes)
        env, vms, ops = self._envs.create(body)
        resp.status = falcon.HTTP_202
        resp.media = views.environment_accepted(env, vms, ops)


class EnvItem:
    """GET and DELETE /api/v1/envs/{env_id}[?cluster_id=]."""

    def __init__(self, deps: Deps, envs: EnvService) -> None:
        self._deps = deps
        self._envs = envs

    @responds(200, shapes.EnvironmentView, query=(CLUSTER_QUERY,))
    def on_get(self, req: falcon.Request, resp: falcon.Response, env_id: str) -> None:
        env = self._envs.find(path_id(env_id, "Environment"), _cluster_param(req))
        resp.media = views.environment(env, self._envs.vms_of(env))

    @responds(
        202,
        shapes.EnvironmentAcceptedView,
        query=(CLUSTER_QUERY,),
        errors=(ActionNotAllowed, Conflict),
    )
    def on_delete(self, req: falcon.Request, resp: falcon.Response, env_id: str) -> None:
        env = self._envs.find(path_id(env_id, "Environment"), _cluster_param(req))
        gone, vms, ops = self._envs.delete(env)
        resp.status = falcon.HTTP_202
        resp.media = views.environment_accepted(gone, vms, ops)


class EnvPower:
    """POST /api/v1/envs/{env_id}/stop and .../start."""

    ACTIONS = tuple(ENV_SIGNALS)
    verb = POWER

    def __init__(self, deps: Deps, envs: EnvService, action: str) -> None:
        self._deps = deps
        self._envs = envs
        self._action = action

    @responds(
        202,
        shapes.EnvironmentAcceptedView,
        query=(CLUSTER_QUERY,),
        errors=(ActionNotAllowed, Conflict),
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response, env_id: str) -> None:
        env = self._envs.find(path_id(env_id, "Environment"), _cluster_param(req))
        vms, ops = self._envs.power(env, self._action)
        resp.status = falcon.HTTP_202
        resp.media = views.environment_accepted(env, vms, ops)


class EnvLease:
    """POST /api/v1/envs/{env_id}/lease {"lifetime": S} or {"expires_at": "..."}: renews
    the environment and every live VM of it."""

    def __init__(self, deps: Deps, envs: EnvService) -> None:
        self._deps = deps
        self._envs = envs

    @responds(
        200,
        shapes.EnvironmentView,
        body=LeaseRequest,
        query=(CLUSTER_QUERY,),
        errors=(ActionNotAllowed, Conflict),
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response, env_id: str) -> None:
        env = self._envs.find(path_id(env_id, "Environment"), _cluster_param(req))
        body = body_as(req, LeaseRequest, self._deps.settings.max_body_bytes)
        renewed, vms = self._envs.lease(env, body)
        resp.media = views.environment(renewed, vms)


class VmItem:
    """GET /api/v1/vms/{vm_id}[?cluster_id=]: any VM, of an env or not."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    @responds(200, shapes.VirtualMachineView, query=(CLUSTER_QUERY,))
    def on_get(self, req: falcon.Request, resp: falcon.Response, vm_id: str) -> None:
        repo = self._deps.repo
        path_id(vm_id, "VM")
        cluster_id = _cluster_param(req)
        try:
            if cluster_id is not None:
                workload = repo.workloads.get(cluster_id, vm_id)
            else:
                workload = repo.workloads.find(vm_id, repo.hosts.list())
        except NotFound:
            raise NotFound("VM not found.") from None
        if workload.engine != Engine.QEMU:
            raise NotFound("VM not found (that id is a container).")
        resp.media = views.virtual_machine(workload)
