"""Environments (003) under /api/v1/envs, and single VMs under /api/v1/vms/{id}.

Env ids are names, unique within their cluster; where one id exists in several
clusters, `?cluster_id=` says which is meant. Decisions live in `handlers/envs.py`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import falcon

from handlers import views
from handlers.body import body_as, path_id
from handlers.deps import Deps
from handlers.envs import ENV_SIGNALS, EnvService
from shared.clock import stamp
from shared.env_requests import CreateEnvReq
from shared.envs import Env, shown_status
from shared.errors import NotFound
from shared.models import Engine, Operation, Workload
from shared.requests import LeaseRequest
from shared.vm import Shape

# -- views ----------------------------------------------------------------------


def vm_view(w: Workload) -> dict[str, Any]:
    """A VM: the container view plus 003's names for its shape."""
    vm = w.vm or {}
    return views.container(w) | {
        "cluster_id": w.cluster_id,
        "env_id": vm.get("env_id"),
        "host_id": w.host_id,
        "image": vm.get("image"),
        "cpu": Shape.of(w.resources).vcpus,
        "mem": w.resources.ram_mb,
        "disk": w.resources.storage_mb,
    }


def env_view(env: Env, workloads: Sequence[Workload]) -> dict[str, Any]:
    by_id = {w.id: w for w in workloads}
    vms = [by_id[vm_id] for vm_id in env.vm_ids if vm_id in by_id]
    return {
        "id": env.id,
        "cluster_id": env.cluster_id,
        "owner": env.owner,
        "ssh_keys": list(env.ssh_keys),
        "lifetime": env.lifetime,
        "status": shown_status(env, vms),
        "created_at": stamp(env.created_at),
        "updated_at": stamp(env.updated_at),
        "expires_at": stamp(env.expires_at),
        "vms": [vm_view(w) for w in vms],
    }


def accepted(env: Env, workloads: Sequence[Workload], ops: Sequence[Operation]) -> dict[str, Any]:
    return env_view(env, workloads) | {"operations": [views.operation(o) for o in ops]}


def _cluster_param(req: falcon.Request) -> str | None:
    value = req.get_param("cluster_id")
    return None if value is None else path_id(value, "Cluster")


# -- resources ----------------------------------------------------------------------


class EnvCollection:
    """GET /api/v1/envs[?cluster_id=] and POST /api/v1/envs."""

    def __init__(self, deps: Deps, envs: EnvService) -> None:
        self._deps = deps
        self._envs = envs

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        repo = self._deps.repo
        envs = repo.envs.list(_cluster_param(req))
        by_cluster: dict[str, list[Workload]] = defaultdict(list)
        for cluster_id in {e.cluster_id for e in envs}:
            by_cluster[cluster_id] = repo.workloads.in_cluster(cluster_id)
        shown = [env_view(e, by_cluster[e.cluster_id]) for e in envs]
        resp.media = [e for e in shown if e["status"] not in ("deleted", "expired")]

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = body_as(req, CreateEnvReq, self._deps.settings.max_body_bytes)
        env, vms, ops = self._envs.create(body)
        resp.status = falcon.HTTP_202
        resp.media = accepted(env, vms, ops)


class EnvItem:
    """GET and DELETE /api/v1/envs/{env_id}[?cluster_id=]."""

    def __init__(self, deps: Deps, envs: EnvService) -> None:
        self._deps = deps
        self._envs = envs

    def on_get(self, req: falcon.Request, resp: falcon.Response, env_id: str) -> None:
        env = self._envs.find(path_id(env_id, "Environment"), _cluster_param(req))
        resp.media = env_view(env, self._envs.vms_of(env))

    def on_delete(self, req: falcon.Request, resp: falcon.Response, env_id: str) -> None:
        env = self._envs.find(path_id(env_id, "Environment"), _cluster_param(req))
        gone, vms, ops = self._envs.delete(env)
        resp.status = falcon.HTTP_202
        resp.media = accepted(gone, vms, ops)


class EnvPower:
    """POST /api/v1/envs/{env_id}/stop and .../start."""

    ACTIONS = tuple(ENV_SIGNALS)

    def __init__(self, deps: Deps, envs: EnvService, action: str) -> None:
        self._deps = deps
        self._envs = envs
        self._action = action

    def on_post(self, req: falcon.Request, resp: falcon.Response, env_id: str) -> None:
        env = self._envs.find(path_id(env_id, "Environment"), _cluster_param(req))
        vms, ops = self._envs.power(env, self._action)
        resp.status = falcon.HTTP_202
        resp.media = accepted(env, vms, ops)


class EnvLease:
    """POST /api/v1/envs/{env_id}/lease {"lifetime": S} or {"expires_at": "..."}: renews
    the environment and every live VM of it."""

    def __init__(self, deps: Deps, envs: EnvService) -> None:
        self._deps = deps
        self._envs = envs

    def on_post(self, req: falcon.Request, resp: falcon.Response, env_id: str) -> None:
        env = self._envs.find(path_id(env_id, "Environment"), _cluster_param(req))
        body = body_as(req, LeaseRequest, self._deps.settings.max_body_bytes)
        renewed, vms = self._envs.lease(env, body)
        resp.media = env_view(renewed, vms)


class VmItem:
    """GET /api/v1/vms/{vm_id}[?cluster_id=]: any VM, of an env or not."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

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
        resp.media = vm_view(workload)
