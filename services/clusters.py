"""What an operator's change to a cluster means: its plan, its allowed eggs, its status."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from services.deps import Deps
from shared.admin_requests import ClusterCreate, ClusterUpdate, PlanLimits
from shared.capacity import Resources
from shared.errors import InvalidInput
from shared.models import Cluster, ClusterStatus, Plan


def plan_of(limits: PlanLimits) -> Plan:
    pooled = limits.model_dump(exclude={"name", "containers", "default_lifetime", "max_lifetime"})
    return Plan(
        name=limits.name,
        limits=Resources.from_api(pooled),
        max_containers=limits.containers,
        default_lifetime=limits.default_lifetime,
        max_lifetime=limits.max_lifetime,
    )


class ClusterService:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._repo = deps.repo

    def create(self, body: ClusterCreate) -> Cluster:
        self._require_eggs(body.egg_ids)
        now = self._deps.clock()
        cluster = Cluster(
            id=self._deps.new_id(),
            name=body.name,
            status=ClusterStatus.ACTIVE,
            plan=plan_of(body.plan),
            used=Resources(),
            container_count=0,
            egg_ids=tuple(dict.fromkeys(body.egg_ids)),
            key_count=0,
            created_at=now,
            updated_at=now,
        )
        self._repo.clusters.create(cluster)
        return cluster

    def update(self, cluster_id: str, body: ClusterUpdate) -> Cluster:
        if body.name is None and body.plan is None and body.egg_ids is None:
            raise InvalidInput("Nothing to change: give name, plan and/or egg_ids.")
        if body.egg_ids is not None:
            self._require_eggs(body.egg_ids)
        return self._repo.clusters.update(
            cluster_id,
            self._deps.clock(),
            name=body.name,
            plan=plan_of(body.plan) if body.plan else None,
            egg_ids=tuple(dict.fromkeys(body.egg_ids)) if body.egg_ids is not None else None,
        )

    def set_status(
        self, cluster_id: str, status: ClusterStatus, forget: Callable[[list[str]], None]
    ) -> Cluster:
        """Give the cluster `status`. `forget` drops the cached principals of the
        cluster's keys first (so the change holds from the very next tenant call), and
        again for any key minted meanwhile. Idempotent, so a retry completes it."""
        self._repo.clusters.get(cluster_id)
        before = {key.key_hash for key in self._repo.keys.list(cluster_id)}
        forget(sorted(before))
        cluster = self._repo.clusters.set_status(cluster_id, status, self._deps.clock())
        minted = {key.key_hash for key in self._repo.keys.list(cluster_id)} - before
        forget(sorted(minted))
        return cluster

    def _require_eggs(self, egg_ids: Sequence[str]) -> None:
        known = {egg.id for egg in self._repo.eggs.list()}
        unknown = [egg_id for egg_id in egg_ids if egg_id not in known]
        if unknown:
            raise InvalidInput(f"Unknown egg ids: {', '.join(unknown)}.")
