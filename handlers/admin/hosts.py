from __future__ import annotations

import falcon

from handlers import views
from handlers.body import body_as, path_id
from services.deps import Deps
from services.hosts import HostService
from shared.admin_requests import HostCreate, HostUpdate


class HostCollection:
    """/api/v1/hosts and /api/v1/nodes: the same collection."""

    def __init__(self, deps: Deps, hosts: HostService) -> None:
        self._deps = deps
        self._hosts = hosts

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        now = self._deps.clock()
        resp.media = [views.host(h, now) for h in self._deps.repo.hosts.list()]

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = body_as(req, HostCreate, self._deps.settings.max_body_bytes)
        host = self._hosts.register(body)
        resp.status = falcon.HTTP_201
        resp.media = views.host(host)


class HostItem:
    def __init__(self, deps: Deps, hosts: HostService) -> None:
        self._deps = deps
        self._hosts = hosts

    def on_get(self, req: falcon.Request, resp: falcon.Response, host_id: str) -> None:
        host = self._deps.repo.hosts.get(path_id(host_id, "Host"))
        resp.media = views.host(host, self._deps.clock())

    def on_patch(self, req: falcon.Request, resp: falcon.Response, host_id: str) -> None:
        body = body_as(req, HostUpdate, self._deps.settings.max_body_bytes)
        host = self._hosts.update(path_id(host_id, "Host"), body)
        resp.media = views.host(host, self._deps.clock())

    def on_delete(self, req: falcon.Request, resp: falcon.Response, host_id: str) -> None:
        force = req.get_param_as_bool("force", default=False)
        self._deps.repo.hosts.delete(path_id(host_id, "Host"), force=bool(force))
        resp.status = falcon.HTTP_204


class HostDrain:
    """POST .../drain (no new placements; running workloads stay) and .../undrain."""

    def __init__(self, hosts: HostService, draining: bool) -> None:
        self._hosts = hosts
        self._draining = draining

    def on_post(self, req: falcon.Request, resp: falcon.Response, host_id: str) -> None:
        host = self._hosts.set_draining(path_id(host_id, "Host"), self._draining)
        resp.media = views.host(host)
