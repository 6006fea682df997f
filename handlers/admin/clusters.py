from __future__ import annotations

import falcon

from handlers import views
from handlers.body import body_as, path_id
from handlers.deps import Deps
from infra.keys import mint_key
from shared.admin_requests import ClusterCreate, KeyCreate
from shared.capacity import Resources
from shared.errors import NotFound
from shared.models import Cluster, ClusterStatus, Plan


class ClusterCollection:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = [views.cluster(c) for c in self._deps.repo.list_clusters()]

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = body_as(req, ClusterCreate, self._deps.settings.max_body_bytes)
        for egg_id in body.egg_ids:
            self._deps.repo.get_egg(egg_id)  # NotFound names the unknown egg
        now = self._deps.clock()
        limits = body.plan.model_dump(exclude={"name", "containers"})
        cluster = Cluster(
            id=self._deps.new_id(),
            name=body.name,
            status=ClusterStatus.ACTIVE,
            plan=Plan(
                name=body.plan.name,
                limits=Resources.from_api(limits),
                max_containers=body.plan.containers,
            ),
            used=Resources(),
            container_count=0,
            egg_ids=tuple(dict.fromkeys(body.egg_ids)),
            key_count=0,
            created_at=now,
            updated_at=now,
        )
        self._deps.repo.create_cluster(cluster)
        resp.status = falcon.HTTP_201
        resp.media = views.cluster(cluster)


class ClusterItem:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    def on_get(self, req: falcon.Request, resp: falcon.Response, cluster_id: str) -> None:
        resp.media = views.cluster(self._deps.repo.get_cluster(path_id(cluster_id, "Cluster")))


class ClusterKeyCollection:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    def on_get(self, req: falcon.Request, resp: falcon.Response, cluster_id: str) -> None:
        self._deps.repo.get_cluster(path_id(cluster_id, "Cluster"))
        resp.media = [views.api_key(k) for k in self._deps.repo.list_keys(cluster_id)]

    def on_post(self, req: falcon.Request, resp: falcon.Response, cluster_id: str) -> None:
        path_id(cluster_id, "Cluster")
        body = body_as(req, KeyCreate, self._deps.settings.max_body_bytes)
        try:
            key, secret = mint_key(
                self._deps.repo, cluster_id, body.name, self._deps.clock(), self._deps.new_id
            )
        except NotFound as exc:
            raise NotFound("Cluster not found.") from exc
        resp.status = falcon.HTTP_201
        resp.media = views.api_key(key, secret)
