from __future__ import annotations

import falcon
from redis.exceptions import RedisError

from handlers import shapes
from handlers.auth import PUBLIC
from handlers.declare import responds
from services.deps import Deps
from shared.errors import CorralError


class HealthResource:
    """GET /health: {"status": "healthy", "version": ...}, with the queue and the
    table checked behind it; 503 and "unhealthy" when either fails."""

    auth = PUBLIC

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    @responds(200, shapes.ServiceHealthView, also={503: shapes.ServiceHealthView})
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        checks = {"queue": self._queue(), "table": self._table()}
        healthy = all(v == "ok" for v in checks.values())
        resp.status = falcon.HTTP_200 if healthy else falcon.HTTP_503
        resp.media = {
            "status": "healthy" if healthy else "unhealthy",
            "version": self._deps.settings.version,
            "checks": checks,
        }

    def _queue(self) -> str:
        try:
            self._deps.redis.ping()
        except RedisError:
            return "unreachable"
        return "ok"

    def _table(self) -> str:
        try:
            self._deps.repo.db.get("HEALTH", "#META", consistent=False)
        except (CorralError, Exception):  # any failure to read means unhealthy
            return "unreachable"
        return "ok"
