"""Images across the fleet: list them (as the health check last saw them), pre-pull
one on hosts, remove one from a host; and the operators' operations these start."""

from __future__ import annotations

import json
from typing import Any

import falcon

from handlers import views
from handlers.body import body_as, path_id
from services.deps import Deps
from services.images import ImageService
from shared.admin_requests import ImageDelete, ImagePull
from shared.clock import iso
from shared.models import FLEET_OPERATIONS, Host
from shared.requests import parse


class ImageCollection:
    """GET /api/v1/images: images across the fleet, as the health check last saw them.
    DELETE /api/v1/images (`image`, `host_id` in the body or the query): remove an
    image from a host, as an operation; 409 image_in_use while a workload uses it."""

    def __init__(self, deps: Deps, images: ImageService) -> None:
        self._deps = deps
        self._images = images

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        hosts: list[Host] = self._deps.repo.hosts.list()
        where: dict[str, list[str]] = {}
        for host in hosts:
            for image in host.images:
                where.setdefault(image, []).append(host.id)
        images: list[dict[str, Any]] = [
            {"image": image, "hosts": sorted(ids)} for image, ids in sorted(where.items())
        ]
        resp.media = {
            "images": images,
            "hosts": [
                {
                    "id": h.id,
                    "name": h.name,
                    "images": list(h.images),
                    "checked_at": iso(h.last_heartbeat),
                }
                for h in hosts
            ],
        }

    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.content_length:
            body = body_as(req, ImageDelete, self._deps.settings.max_body_bytes)
        else:
            given = {name: req.get_param(name) for name in ("image", "host_id")}
            body = parse(ImageDelete, json.dumps({k: v for k, v in given.items() if v}))
        op = self._images.delete(body)
        resp.status = falcon.HTTP_202
        resp.media = {"operation": views.operator_operation(op)}


class ImagePullResource:
    """POST /api/v1/images/pull: one operation per host."""

    def __init__(self, deps: Deps, images: ImageService) -> None:
        self._deps = deps
        self._images = images

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = body_as(req, ImagePull, self._deps.settings.max_body_bytes)
        ops = self._images.pull(body)
        resp.status = falcon.HTTP_202
        resp.media = {"operations": [views.operator_operation(op) for op in ops]}


class FleetOperationItem:
    """GET /api/v1/operations/:id: an operator's operation on a host (image pulls and
    deletes); workloads' operations are read under their cluster."""

    def __init__(self, deps: Deps) -> None:
        self._repo = deps.repo

    def on_get(self, req: falcon.Request, resp: falcon.Response, operation_id: str) -> None:
        op = self._repo.operations.get(FLEET_OPERATIONS, path_id(operation_id, "Operation"))
        resp.media = views.operator_operation(op)
