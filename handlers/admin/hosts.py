from __future__ import annotations

import falcon

from handlers import shapes, views
from handlers.body import body_as, path_id
from handlers.declare import Query, responds
from handlers.pages import NAME_PREFIX_QUERY, PAGE_QUERIES, paged, status_query
from services.deps import Deps
from services.hosts import HostService
from shared.admin_requests import HostCreate, HostUpdate
from shared.errors import Conflict, HostInUse, PortRangeConflict
from shared.models import HostStatus

FORCE_QUERY = Query(
    "force", {"type": "boolean"}, "Delete the host even though it still holds workloads."
)


class HostCollection:
    """/api/v1/hosts and /api/v1/nodes: the same collection."""

    def __init__(self, deps: Deps, hosts: HostService) -> None:
        self._deps = deps
        self._hosts = hosts

    @responds(
        200,
        list[shapes.HostView],
        query=(*PAGE_QUERIES, NAME_PREFIX_QUERY, status_query(s.value for s in HostStatus)),
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        now = self._deps.clock()
        listed = paged(
            req,
            resp,
            self._deps.settings,
            self._deps.repo.hosts.list(),
            name_of=lambda h: h.name,
            status_of=lambda h: h.status.value,
        )
        resp.media = [views.host(h, now) for h in listed]

    @responds(201, shapes.HostView, body=HostCreate, errors=(Conflict, PortRangeConflict))
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = body_as(req, HostCreate, self._deps.settings.max_body_bytes)
        host = self._hosts.register(body)
        resp.status = falcon.HTTP_201
        resp.media = views.host(host)


class HostItem:
    def __init__(self, deps: Deps, hosts: HostService) -> None:
        self._deps = deps
        self._hosts = hosts

    @responds(200, shapes.HostView)
    def on_get(self, req: falcon.Request, resp: falcon.Response, host_id: str) -> None:
        host = self._deps.repo.hosts.get(path_id(host_id, "Host"))
        resp.media = views.host(host, self._deps.clock())

    @responds(200, shapes.HostView, body=HostUpdate, errors=(Conflict, PortRangeConflict))
    def on_patch(self, req: falcon.Request, resp: falcon.Response, host_id: str) -> None:
        body = body_as(req, HostUpdate, self._deps.settings.max_body_bytes)
        host = self._hosts.update(path_id(host_id, "Host"), body)
        resp.media = views.host(host, self._deps.clock())

    @responds(204, None, query=(FORCE_QUERY,), errors=(HostInUse, Conflict))
    def on_delete(self, req: falcon.Request, resp: falcon.Response, host_id: str) -> None:
        force = req.get_param_as_bool("force", default=False)
        self._deps.repo.hosts.delete(path_id(host_id, "Host"), force=bool(force))
        resp.status = falcon.HTTP_204


class HostDrain:
    """POST .../drain (no new placements; running workloads stay) and .../undrain."""

    def __init__(self, hosts: HostService, draining: bool) -> None:
        self._hosts = hosts
        self._draining = draining

    @responds(200, shapes.HostView, errors=(Conflict,))
    def on_post(self, req: falcon.Request, resp: falcon.Response, host_id: str) -> None:
        host = self._hosts.set_draining(path_id(host_id, "Host"), self._draining)
        resp.media = views.host(host)
