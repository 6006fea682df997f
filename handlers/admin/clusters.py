from __future__ import annotations

from typing import Any

import falcon

from handlers import shapes, views
from handlers.auth import Authenticator
from handlers.body import body_as, path_id
from handlers.declare import Query, responds
from handlers.pages import NAME_PREFIX_QUERY, PAGE_QUERIES, paged, status_query
from handlers.public.containers import CONTAINER_QUERIES, list_containers
from handlers.public.keys import create_key, responds_with_new_key
from infra.table.clusters import WorkloadCounts
from services.clusters import ClusterService
from services.deps import Deps
from shared.admin_requests import ClusterCreate, ClusterUpdate
from shared.errors import Conflict, PlanBelowUsage
from shared.models import Cluster, ClusterStatus


def cluster_with_totals(c: Cluster, counts: WorkloadCounts) -> dict[str, Any]:
    """The operator's view: the tenant view plus 001's type, description, config,
    node_count and running_tasks (from the cluster's workload counts: one item read,
    whatever its workloads)."""
    return views.cluster(c) | {
        "type": c.type.value,
        "description": c.description,
        "config": c.config.to_json(),
        "node_count": counts.node_count,
        "running_tasks": counts.running_tasks,
    }


def _with_totals(deps: Deps, cluster: Cluster) -> dict[str, Any]:
    return cluster_with_totals(
        cluster, deps.repo.clusters.workload_counts([cluster.id])[cluster.id]
    )


class ClusterCollection:
    def __init__(self, deps: Deps, clusters: ClusterService) -> None:
        self._deps = deps
        self._clusters = clusters

    @responds(
        200,
        list[shapes.OperatorClusterView],
        query=(*PAGE_QUERIES, NAME_PREFIX_QUERY, status_query(s.value for s in ClusterStatus)),
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        repo = self._deps.repo
        listed = paged(
            req,
            resp,
            self._deps.settings,
            repo.clusters.list(),
            name_of=lambda c: c.name,
            status_of=lambda c: c.status.value,
        )
        counts = repo.clusters.workload_counts(c.id for c in listed)
        resp.media = [cluster_with_totals(c, counts[c.id]) for c in listed]

    @responds(201, shapes.OperatorClusterView, body=ClusterCreate, errors=(Conflict,))
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = body_as(req, ClusterCreate, self._deps.settings.max_body_bytes)
        cluster = self._clusters.create(body)
        resp.status = falcon.HTTP_201
        resp.media = cluster_with_totals(cluster, WorkloadCounts())


class ClusterItem:
    def __init__(self, deps: Deps, clusters: ClusterService) -> None:
        self._deps = deps
        self._clusters = clusters

    @responds(200, shapes.OperatorClusterView)
    def on_get(self, req: falcon.Request, resp: falcon.Response, cluster_id: str) -> None:
        cluster = self._deps.repo.clusters.get(path_id(cluster_id, "Cluster"))
        resp.media = _with_totals(self._deps, cluster)

    @responds(
        200, shapes.OperatorClusterView, body=ClusterUpdate, errors=(PlanBelowUsage, Conflict)
    )
    def on_patch(self, req: falcon.Request, resp: falcon.Response, cluster_id: str) -> None:
        path_id(cluster_id, "Cluster")
        body = body_as(req, ClusterUpdate, self._deps.settings.max_body_bytes)
        cluster = self._clusters.update(cluster_id, body)
        resp.media = _with_totals(self._deps, cluster)


class ClusterStatusChange:
    """POST /clusters/:id/suspend | reactivate | expire. Takes effect on the very next
    tenant call: the cluster's cached principals are dropped before the status is
    written (and the change is idempotent, so a retry after a failure completes it)."""

    TARGETS = {
        "suspend": ClusterStatus.SUSPENDED,
        "reactivate": ClusterStatus.ACTIVE,
        "expire": ClusterStatus.EXPIRED,
    }

    def __init__(
        self, deps: Deps, clusters: ClusterService, authenticator: Authenticator, action: str
    ) -> None:
        self._deps = deps
        self._clusters = clusters
        self._auth = authenticator
        self._target = self.TARGETS[action]

    @responds(200, shapes.OperatorClusterView, errors=(Conflict,))
    def on_post(self, req: falcon.Request, resp: falcon.Response, cluster_id: str) -> None:
        cluster = self._clusters.set_status(
            path_id(cluster_id, "Cluster"), self._target, self._auth.forget
        )
        resp.media = _with_totals(self._deps, cluster)


class ClusterKeyCollection:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    @responds(200, list[shapes.ApiKeyView], query=(*PAGE_QUERIES, NAME_PREFIX_QUERY))
    def on_get(self, req: falcon.Request, resp: falcon.Response, cluster_id: str) -> None:
        self._deps.repo.clusters.get(path_id(cluster_id, "Cluster"))
        keys = self._deps.repo.keys.list(cluster_id)
        listed = paged(req, resp, self._deps.settings, keys, name_of=lambda k: k.name)
        resp.media = [views.api_key(k) for k in listed]

    @responds_with_new_key
    def on_post(self, req: falcon.Request, resp: falcon.Response, cluster_id: str) -> None:
        """A new key of the cluster (its secret shown once), optionally narrowed to
        `verbs`, `container_ids`, `egg_ids` and an `expires_at`."""
        create_key(req, resp, self._deps, path_id(cluster_id, "Cluster"))


class ClusterKeyItem:
    def __init__(self, deps: Deps, authenticator: Authenticator) -> None:
        self._deps = deps
        self._auth = authenticator

    @responds(200, shapes.ApiKeyView)
    def on_get(
        self, req: falcon.Request, resp: falcon.Response, cluster_id: str, key_id: str
    ) -> None:
        key = self._deps.repo.keys.get(path_id(cluster_id, "Cluster"), path_id(key_id, "Key"))
        resp.media = views.api_key(key)

    @responds(204, None)
    def on_delete(
        self, req: falcon.Request, resp: falcon.Response, cluster_id: str, key_id: str
    ) -> None:
        """Revoke at once: the key's cached principal goes first, then the table says
        revoked. Idempotent: revoking a revoked key clears its cache again and answers
        204, so a retry after any failure completes the revocation."""
        key = self._deps.repo.keys.get(path_id(cluster_id, "Cluster"), path_id(key_id, "Key"))
        self._auth.forget([key.key_hash])
        self._deps.repo.revoke_key(key, self._deps.clock())
        self._deps.jobs.announce_revoked(key.id)  # its open waits and follows end
        resp.status = falcon.HTTP_204


class ClusterContainerCollection:
    """GET /clusters/:id/containers: the cluster's containers as operators see them."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    @responds(
        200,
        list[shapes.OperatorContainerView],
        query=(
            *CONTAINER_QUERIES,
            Query("host_id", {"type": "string"}, "Only those on this host."),
        ),
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, cluster_id: str) -> None:
        self._deps.repo.clusters.get(path_id(cluster_id, "Cluster"))
        now = self._deps.clock()
        listed = list_containers(req, resp, self._deps, cluster_id)
        resp.media = [views.operator_container(w, now) for w in listed]


class ClusterContainerItem:
    """GET /clusters/:id/containers/:container_id: a tenant's container as operators see
    it, with the host's own words when its last operation failed."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    @responds(200, shapes.OperatorContainerView)
    def on_get(
        self, req: falcon.Request, resp: falcon.Response, cluster_id: str, container_id: str
    ) -> None:
        workload = self._deps.repo.workloads.get(
            path_id(cluster_id, "Cluster"), path_id(container_id, "Container")
        )
        resp.media = views.operator_container(workload, self._deps.clock())


class ClusterOperationItem:
    """GET /clusters/:id/operations/:operation_id: an operation as operators see it."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    @responds(200, shapes.OperatorOperationView)
    def on_get(
        self, req: falcon.Request, resp: falcon.Response, cluster_id: str, operation_id: str
    ) -> None:
        operation = self._deps.repo.operations.get(
            path_id(cluster_id, "Cluster"), path_id(operation_id, "Operation")
        )
        resp.media = views.operator_operation(operation)
