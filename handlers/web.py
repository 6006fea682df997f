"""The dashboard: `GET /` and its two assets under `/web/`, static files of this
package (handlers/web/) read once and served with a strict Content-Security-Policy.
The page calls the same public and operator API as any client."""

from __future__ import annotations

from pathlib import Path

import falcon

from handlers.auth import PUBLIC
from handlers.declare import responds
from shared.errors import NotFound

WEB_DIR = Path(__file__).resolve().parent / "web"
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
# Only this server's own files and API: no inline script or style, no other origin,
# not framed. (Allocation links are plain navigation, which CSP leaves alone.)
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class Dashboard:
    """`/` (the page) and `/web/{name}` (its script, style sheet and icon)."""

    auth = PUBLIC

    def __init__(self) -> None:
        self._files = {name: (WEB_DIR / name).read_bytes() for name in ASSETS}

    @responds(
        200, str, media_type="text/html", streams=("text/javascript", "text/css", "image/svg+xml")
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str = "index.html") -> None:
        if name not in self._files:
            raise NotFound("No such file.")
        resp.data = self._files[name]
        resp.content_type = ASSETS[name]
        resp.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        resp.set_header("X-Content-Type-Options", "nosniff")
        resp.set_header("Referrer-Policy", "no-referrer")
        # The page must not be cached past a release; assets revalidate cheaply.
        resp.set_header("Cache-Control", "no-cache")
