from __future__ import annotations

import falcon

from handlers import views
from handlers.body import body_as, path_id
from handlers.deps import Deps
from shared.admin_requests import HostCreate
from shared.capacity import Resources
from shared.models import Host, HostStatus


class HostCollection:
    """/api/v1/hosts and /api/v1/nodes: the same collection."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        now = self._deps.clock()
        resp.media = [views.host(h, now) for h in self._deps.repo.hosts.list()]

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = body_as(req, HostCreate, self._deps.settings.max_body_bytes)
        now = self._deps.clock()
        ssh = {}
        if body.ssh_host_key and body.ssh_private_key:
            ssh = {"host_key": body.ssh_host_key, "private_key": body.ssh_private_key}
        host = Host(
            id=self._deps.new_id(),
            name=body.name,
            driver=body.driver,
            address=body.address,
            engines=tuple(dict.fromkeys(body.engines)),
            capacity=Resources.from_api(body.capacity.model_dump()),
            used=Resources(),
            workload_count=0,
            status=HostStatus.READY,
            labels=dict(body.labels),
            tls=dict(body.tls),
            ssh=ssh,
            port_range=(body.port_range[0], body.port_range[1]) if body.port_range else None,
            created_at=now,
            updated_at=now,
        )
        self._deps.repo.hosts.create(host)
        resp.status = falcon.HTTP_201
        resp.media = views.host(host)


class HostItem:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    def on_get(self, req: falcon.Request, resp: falcon.Response, host_id: str) -> None:
        host = self._deps.repo.hosts.get(path_id(host_id, "Host"))
        resp.media = views.host(host, self._deps.clock())

    def on_delete(self, req: falcon.Request, resp: falcon.Response, host_id: str) -> None:
        force = req.get_param_as_bool("force", default=False)
        self._deps.repo.hosts.delete(path_id(host_id, "Host"), force=bool(force))
        resp.status = falcon.HTTP_204


class HostDrain:
    """POST .../drain (no new placements; running workloads stay) and .../undrain."""

    def __init__(self, deps: Deps, draining: bool) -> None:
        self._deps = deps
        self._draining = draining

    def on_post(self, req: falcon.Request, resp: falcon.Response, host_id: str) -> None:
        host = self._deps.repo.hosts.get(path_id(host_id, "Host"))
        updated = self._deps.repo.hosts.set_draining(host, self._draining, self._deps.clock())
        resp.media = views.host(updated)
