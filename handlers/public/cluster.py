from __future__ import annotations

import falcon

from handlers import shapes, views
from handlers.auth import TENANT
from handlers.declare import responds
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

    @responds(200, list[shapes.EggView])
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        cluster = self._repo.clusters.get(req.context.principal.cluster_id)
        allowed = set(cluster.egg_ids)
        resp.media = [views.egg(e) for e in self._repo.eggs.list() if e.id in allowed]
