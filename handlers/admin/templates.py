"""Templates (one-click installs, as in 001) are eggs seen from the operator's side:
instantiating one creates a workload from the egg with its defaults filled in."""

from __future__ import annotations

from typing import Any

import falcon

from handlers import shapes, views
from handlers.body import body_as, path_id
from handlers.declare import responds
from handlers.pages import NAME_PREFIX_QUERY, PAGE_QUERIES, paged
from handlers.public.containers import CREATE_ERRORS
from services.deps import Deps
from services.workloads import WorkloadService
from shared.admin_requests import Instantiate
from shared.errors import InvalidCluster, NotFound
from shared.models import Egg
from shared.requests import ContainerCreate


def template(egg: Egg) -> dict[str, Any]:
    minimum, defaults = egg.minimum.to_api(), egg.defaults.to_api()
    return views.operator_egg(egg) | {
        "parameters": [
            {"name": "cluster_id", "type": "string", "required": True},
            {"name": "name", "type": "string", "required": True},
            *(
                {
                    "name": f"resources.{field}",
                    "type": "number",
                    "required": False,
                    "default": defaults[field],
                    "minimum": minimum[field],
                }
                for field in defaults
            ),
            {"name": "constraints", "type": "object", "required": False},
        ]
    }


class TemplateCollection:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    @responds(200, list[shapes.TemplateView], query=(*PAGE_QUERIES, NAME_PREFIX_QUERY))
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        eggs = self._deps.repo.eggs.list()
        listed = paged(req, resp, self._deps.settings, eggs, name_of=lambda e: e.name)
        resp.media = [template(e) for e in listed]


class TemplateItem:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    @responds(200, shapes.TemplateView)
    def on_get(self, req: falcon.Request, resp: falcon.Response, template_id: str) -> None:
        resp.media = template(_egg_of(self._deps, template_id))


class TemplateInstantiate:
    def __init__(self, deps: Deps, workloads: WorkloadService) -> None:
        self._deps = deps
        self._workloads = workloads

    @responds(
        202, shapes.TemplateAcceptedView, body=Instantiate, errors=(*CREATE_ERRORS, InvalidCluster)
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response, template_id: str) -> None:
        egg = _egg_of(self._deps, template_id)
        body = body_as(req, Instantiate, self._deps.settings.max_body_bytes)
        request = ContainerCreate.model_validate(
            {"name": body.name, "egg_id": egg.id, **body.resources.model_dump(exclude_none=True)}
        )
        workload, operation = self._workloads.create(body.cluster_id, request, body.constraints)
        resp.status = falcon.HTTP_202
        resp.media = views.accepted(workload, operation) | {"cluster_id": body.cluster_id}


def _egg_of(deps: Deps, template_id: str) -> Egg:
    try:
        return deps.repo.eggs.get(path_id(template_id, "Template"))
    except NotFound as exc:
        raise NotFound("Template not found.") from exc
