"""The platform's settings: which cluster takes 003's environments when a request names
none."""

from __future__ import annotations

from services.deps import Deps
from shared.admin_requests import PlatformSettingsUpdate
from shared.errors import InvalidInput
from shared.models import PlatformSettings


class PlatformService:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._repo = deps.repo

    def settings(self) -> PlatformSettings:
        return self._repo.platform.get()

    def update(self, body: PlatformSettingsUpdate) -> PlatformSettings:
        if "default_cluster_id" not in body.model_fields_set:
            raise InvalidInput("Nothing to change: give default_cluster_id (or null).")
        if body.default_cluster_id is not None:
            self._repo.clusters.get(body.default_cluster_id)  # NotFound when unknown
        return self._repo.platform.set_default_cluster(body.default_cluster_id, self._deps.clock())

    def cluster_for(self, cluster_id: str | None) -> str:
        """The cluster a request names, else the platform's default one."""
        if cluster_id is not None:
            return cluster_id
        default = self.settings().default_cluster_id
        if default is None:
            raise InvalidInput(
                "cluster_id is required: no default cluster is set "
                '(PATCH /api/v1/platform/settings {"default_cluster_id": ...}).'
            )
        return default
