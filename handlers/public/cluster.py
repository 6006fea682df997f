from __future__ import annotations

import falcon

from handlers import shapes, views
from handlers.auth import TENANT
from handlers.declare import responds
from handlers.pages import NAME_PREFIX_QUERY, PAGE_QUERIES, paged
from services.deps import Deps


class ClusterResource:
    auth = TENANT

    def __init__(self, deps: Deps) -> None:
        self._repo = deps.repo

    @responds(200, shapes.ClusterView)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = views.cluster(self._repo.clusters.get(req.context.principal.cluster_id))


class CapacityResource:
    auth = TENANT

    def __init__(self, deps: Deps) -> None:
        self._repo = deps.repo

    @responds(200, shapes.CapacityView)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = views.capacity(self._repo.clusters.get(req.context.principal.cluster_id))


class EggCollection:
    auth = TENANT

    def __init__(self, deps: Deps) -> None:
        self._repo = deps.repo
        self._settings = deps.settings

    @responds(200, list[shapes.EggView], query=(*PAGE_QUERIES, NAME_PREFIX_QUERY))
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        cluster = self._repo.clusters.get(req.context.principal.cluster_id)
        scope = req.context.principal.scope
        allowed = [
            e for e in self._repo.eggs.list() if e.id in cluster.egg_ids and scope.allows_egg(e.id)
        ]
        listed = paged(req, resp, self._settings, allowed, name_of=lambda e: e.name)
        resp.media = [views.egg(e) for e in listed]
