"""The platform as a whole: its public configuration (001's GET /api/v1/platform/config)
and the operator's settings (GET and PATCH /api/v1/platform/settings)."""

from __future__ import annotations

from typing import Any

import falcon

from handlers.auth import PUBLIC
from handlers.body import body_as
from services.deps import Deps
from services.platform import PlatformService
from shared.admin_requests import PlatformSettingsUpdate
from shared.clock import iso
from shared.models import PlatformSettings


def settings_view(settings: PlatformSettings) -> dict[str, Any]:
    return {
        "default_cluster_id": settings.default_cluster_id,
        "updated_at": iso(settings.updated_at),
    }


class PlatformSettingsResource:
    def __init__(self, deps: Deps, platform: PlatformService) -> None:
        self._deps = deps
        self._platform = platform

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = settings_view(self._platform.settings())

    def on_patch(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = body_as(req, PlatformSettingsUpdate, self._deps.settings.max_body_bytes)
        resp.media = settings_view(self._platform.update(body))


class PlatformConfig:
    """GET /api/v1/platform/config: what a dashboard or client needs before it logs in:
    the version, what is switched on, and where each API lives."""

    auth = PUBLIC

    def __init__(self, deps: Deps, base_paths: dict[str, str]) -> None:
        self._deps = deps
        self._base_paths = dict(base_paths)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        settings = self._deps.settings
        resp.media = {
            "version": settings.version,
            "features": {
                "token_login": settings.token_secret is not None,
                "cors": bool(settings.cors_origins),
                "vms": True,
                "environments": True,
                "instances": True,
            },
            "api": self._base_paths,
        }
