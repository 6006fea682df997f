"""What an operator's change to a cluster means: its plan, its allowed eggs, its status."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from services.deps import Deps
from shared.admin_requests import ClusterCreate, ClusterUpdate, PlanLimits
from shared.capacity import Resources
from shared.errors import InvalidInput
from shared.models import Cluster, ClusterStatus, Plan


def plan_of(limits: PlanLimits) -> Plan:
    pooled = limits.model_dump(
        exclude={
            "name",
            "containers",
            "default_lifetime",
            "max_lifetime",
            "requests_per_minute",
            "cluster_requests_per_minute",
        }
    )
    return Plan(
        name=limits.name,
        limits=Resources.from_api(pooled),
        max_containers=limits.containers,
        default_lifetime=limits.default_lifetime,
        max_lifetime=limits.max_lifetime,
        requests_per_minute=limits.requests_per_minute,
        cluster_requests_per_minute=limits.cluster_requests_per_minute,
    )


class ClusterService:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._repo = deps.repo

    def create(self, body: ClusterCreate) -> Cluster:
        self._require_eggs(body.egg_ids)
        _require_default_allowed(body.config.default_egg_id, body.egg_ids)
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
            type=body.type,
            description=body.description,
            config=body.config.config(),
        )
        self._repo.clusters.create(cluster)
        return cluster

    def update(self, cluster_id: str, body: ClusterUpdate) -> Cluster:
        if body.is_empty():
            raise InvalidInput(
                "Nothing to change: give name, plan, egg_ids, type, description and/or config."
            )
        if body.egg_ids is not None:
            self._require_eggs(body.egg_ids)
        if body.egg_ids is not None or body.config is not None:
            current = self._repo.clusters.get(cluster_id)
            config = body.config.config() if body.config else current.config
            allowed = body.egg_ids if body.egg_ids is not None else current.egg_ids
            _require_default_allowed(config.default_egg_id, allowed)
        return self._repo.clusters.update(
            cluster_id,
            self._deps.clock(),
            name=body.name,
            plan=plan_of(body.plan) if body.plan else None,
            egg_ids=tuple(dict.fromkeys(body.egg_ids)) if body.egg_ids is not None else None,
            cluster_type=body.type,
            description=body.description,
            config=body.config.config() if body.config else None,
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


def _require_default_allowed(default_egg_id: str | None, egg_ids: Sequence[str]) -> None:
    if default_egg_id is not None and default_egg_id not in egg_ids:
        raise InvalidInput(
            f"config.default_egg_id: egg {default_egg_id} is not in the cluster's egg_ids."
        )
