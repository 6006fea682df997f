from __future__ import annotations

import falcon

from handlers import shapes, views
from handlers.body import body_as, path_id
from handlers.declare import responds
from handlers.pages import NAME_PREFIX_QUERY, PAGE_QUERIES, paged
from services.deps import Deps
from services.eggs import EggService
from shared.admin_requests import EggCreate, EggUpdate
from shared.errors import Conflict


class EggCollection:
    def __init__(self, deps: Deps, eggs: EggService) -> None:
        self._deps = deps
        self._eggs = eggs

    @responds(200, list[shapes.OperatorEggView], query=(*PAGE_QUERIES, NAME_PREFIX_QUERY))
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        eggs = self._deps.repo.eggs.list()
        listed = paged(req, resp, self._deps.settings, eggs, name_of=lambda e: e.name)
        resp.media = [views.operator_egg(e) for e in listed]

    @responds(201, shapes.OperatorEggView, body=EggCreate, errors=(Conflict,))
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = body_as(req, EggCreate, self._deps.settings.max_body_bytes)
        egg = self._eggs.create(body)
        resp.status = falcon.HTTP_201
        resp.media = views.operator_egg(egg)


class EggItem:
    def __init__(self, deps: Deps, eggs: EggService) -> None:
        self._deps = deps
        self._eggs = eggs

    @responds(200, shapes.OperatorEggView)
    def on_get(self, req: falcon.Request, resp: falcon.Response, egg_id: str) -> None:
        resp.media = views.operator_egg(self._deps.repo.eggs.get(path_id(egg_id, "Egg")))

    @responds(200, shapes.OperatorEggView, body=EggUpdate, errors=(Conflict,))
    def on_patch(self, req: falcon.Request, resp: falcon.Response, egg_id: str) -> None:
        egg = self._deps.repo.eggs.get(path_id(egg_id, "Egg"))
        body = body_as(req, EggUpdate, self._deps.settings.max_body_bytes)
        resp.media = views.operator_egg(self._eggs.update(egg, body))

    @responds(204, None, errors=(Conflict,))
    def on_delete(self, req: falcon.Request, resp: falcon.Response, egg_id: str) -> None:
        self._eggs.delete(path_id(egg_id, "Egg"))
        resp.status = falcon.HTTP_204
