"""GET /openapi.json (the document of this very app) and GET /docs (a page that reads
it: Swagger UI, served from Corral itself, no CDN).

Swagger UI's files come from the npm package `swagger-ui-dist`, pinned in
package-lock.json: `make deps` puts it in node_modules/, and the Lambda artifact
carries the two files it needs in handlers/static/swagger-ui/ (scripts/package-serverless.sh)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import falcon

from handlers.auth import PUBLIC
from handlers.declare import responds
from shared.errors import NotFound

ROOT = Path(__file__).resolve().parents[1]
ASSET_DIRS = (
    Path(__file__).resolve().parent / "static" / "swagger-ui",
    ROOT / "node_modules" / "swagger-ui-dist",
)
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
}
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Corral API reference</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<div id="reference"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#reference",
  deepLinking: true, persistAuthorization: false, tryItOutEnabled: false});
</script>
</body>
</html>
"""


class OpenApiDocument:
    """The OpenAPI 3.1 document of every route of this app, tenant and operator."""

    auth = PUBLIC

    def __init__(self, app: falcon.App[Any, Any], version: str) -> None:
        self._app = app
        self._version = version
        self._body: bytes | None = None

    def as_dict(self) -> dict[str, Any]:
        from handlers.openapi import document  # built on first use, off the cold path

        return document(self._app, version=self._version)

    @responds(200, dict[str, Any])
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self._body is None:
            self._body = json.dumps(self.as_dict(), separators=(",", ":")).encode()
        resp.content_type = falcon.MEDIA_JSON
        resp.data = self._body


class DocsPage:
    """A readable reference of the API (Swagger UI over /openapi.json)."""

    auth = PUBLIC

    @responds(200, str, media_type="text/html")
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_HTML
        resp.text = PAGE


class DocsAsset:
    """The page's script and stylesheet (swagger-ui-dist)."""

    auth = PUBLIC

    def __init__(self) -> None:
        self._cache: dict[str, bytes] = {}

    @responds(200, str, media_type="text/javascript", streams=("text/css",))
    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        if name not in ASSETS:
            raise NotFound("No such file.")
        if name not in self._cache:
            self._cache[name] = asset_path(name).read_bytes()
        resp.content_type = ASSETS[name]
        resp.set_header("Cache-Control", "public, max-age=86400")
        resp.data = self._cache[name]


def asset_path(name: str) -> Path:
    for folder in ASSET_DIRS:
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(
        f"{name} of swagger-ui-dist is in none of {[str(d) for d in ASSET_DIRS]}: run make deps"
    )
