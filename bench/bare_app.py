"""The API throughput baseline: a bare Falcon app answering fixed JSON on the same
paths, served by the same gunicorn settings. What gunicorn, WSGI and Falcon cost
alone, with no authentication, no Redis and no table.

    gunicorn --config gunicorn.conf.py bench.bare_app:app
"""

from __future__ import annotations

import falcon
from a2wsgi import WSGIMiddleware

from shared.settings import Settings

BASE = "/api/public/clusters/v1"
CONTAINER = {
    "id": "0123456789abcdef",
    "name": "web",
    "egg_id": "fedcba9876543210",
    "status": "running",
    "resources": {"cpu_cores": 0.5, "ram_mb": 64, "storage_mb": 0, "io": 0, "ports": 0},
    "created_at": "2024-01-01T00:00:00Z",
    "updated_at": "2024-01-01T00:00:00Z",
    "expires_at": None,
}
OPERATION = {"id": "op-0123456789abcdef", "kind": "provision", "status": "queued", "error": None}


class Health:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "ok"}


class Containers:
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.get_media()  # read and parse the body (Corral parses it as it validates)
        resp.status = falcon.HTTP_202
        resp.media = {"container": CONTAINER, "operation": OPERATION}


class Container:
    def on_get(self, req: falcon.Request, resp: falcon.Response, container_id: str) -> None:
        resp.media = CONTAINER


app = falcon.App()
app.add_route("/health", Health())
app.add_route(f"{BASE}/containers", Containers())
app.add_route(f"{BASE}/containers/{{container_id}}", Container())

# Served as gunicorn.conf.py serves Corral's requests that do not wait: on a pool of
# threads behind gunicorn's asgi worker (see handlers.asgi).
served = WSGIMiddleware(app, workers=Settings().web_threads)  # type: ignore[arg-type]
