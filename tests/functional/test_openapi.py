"""GET /openapi.json and GET /docs: the document covers every route of the app, with
the right key per route, and cannot drift from what the app answers."""

from __future__ import annotations

import json

import falcon
import pytest
from openapi_spec_validator import validate

from handlers import shapes
from handlers.auth import ANY_KEY, OPERATOR, PUBLIC, TENANT
from handlers.declare import responds
from handlers.openapi import Undeclared, document, routes
from handlers.routing import routes as route_table
from tests.fixtures.corral import Api
from tests.fixtures.openapi_check import CheckedClient


def test_the_document_describes_every_route_and_method(api: Api) -> None:
    resp = api.client.simulate_get("/openapi.json")

    assert resp.status_code == 200
    doc = resp.json
    assert doc["openapi"] == "3.1.0"
    served = {(r.path, r.method.lower()) for r in routes(api.client.app)}
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert documented == served
    assert ("/api/public/clusters/v1/containers", "post") in documented
    assert ("/api/v1/hosts/{host_id}/drain", "post") in documented


def test_the_route_table_serves_every_action_of_the_resources(api: Api) -> None:
    """handlers.app writes the action routes out (so that it need not import the
    resources): they are the resources' own."""
    from handlers.admin.clusters import ClusterStatusChange
    from handlers.admin.envs import EnvPower
    from handlers.compat.instances import InstancePower

    served: dict[type, set[str]] = {}
    for template, resource in route_table(api.client.app):
        served.setdefault(type(resource), set()).add(template.rsplit("/", 1)[-1])

    assert served[ClusterStatusChange] == set(ClusterStatusChange.TARGETS)
    assert served[EnvPower] == set(EnvPower.ACTIONS)
    assert served[InstancePower] == set(InstancePower.ACTIONS)


def test_the_document_is_valid_openapi_3_1(api: Api) -> None:
    validate(api.client.simulate_get("/openapi.json").json)


def test_each_route_names_the_key_it_takes(api: Api) -> None:
    doc = api.client.simulate_get("/openapi.json").json
    schemes = doc["components"]["securitySchemes"]
    assert {s["scheme"] for s in schemes.values()} == {"bearer"}
    auth = {(r.path, r.method.lower()): r.auth for r in routes(api.client.app)}
    expected = {
        TENANT: ["tenantKey"],
        OPERATOR: ["operatorKey"],
        ANY_KEY: ["tenantKey", "operatorKey"],
        PUBLIC: [],
    }
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            security = [name for entry in op.get("security", []) for name in entry]
            assert security == expected[auth[(path, method)]], (method, path)
            if path.startswith("/api/public/"):
                assert security == ["tenantKey"], (method, path)
                assert "invalid_cluster" in op["responses"]["403"]["description"]
            if security:
                assert "unauthorized" in op["responses"]["401"]["description"]
    # 001-004's compatible paths take the key of their kind; the document is public.
    assert doc["paths"]["/api/instances"]["get"]["security"] == [{"tenantKey": []}]
    assert doc["paths"]["/api/envs"]["get"]["security"] == [{"operatorKey": []}]
    assert doc["paths"]["/api/v1/hosts"]["get"]["security"] == [{"operatorKey": []}]
    assert "security" not in doc["paths"]["/openapi.json"]["get"]


def test_bodies_answers_and_error_codes_come_from_the_models(api: Api) -> None:
    doc = api.client.simulate_get("/openapi.json").json
    create = doc["paths"]["/api/public/clusters/v1/containers"]["post"]
    schemas = doc["components"]["schemas"]

    body_ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body_ref == "#/components/schemas/ContainerCreate"
    assert {"name", "egg_id"} <= set(schemas["ContainerCreate"]["required"])
    answer = create["responses"]["202"]["content"]["application/json"]["schema"]
    assert answer == {"$ref": "#/components/schemas/AcceptedView"}
    # Answers are closed: a field a view adds without its shape breaks the tests.
    assert schemas["ContainerView"]["additionalProperties"] is False
    codes_409 = create["responses"]["409"]["content"]["application/json"]["schema"]
    assert set(codes_409["properties"]["error"]["properties"]["code"]["enum"]) == {
        "action_not_allowed",
        "capacity_exceeded",
        "conflict",
        "container_limit_reached",
        "idempotency_key_reused",
        "no_host_available",
    }
    # Every write takes an Idempotency-Key; every keyed answer carries its rate limit.
    assert {"name": "Idempotency-Key", "in": "header"}.items() <= create["parameters"][0].items()
    assert {"RateLimit-Limit", "Idempotent-Replayed"} <= set(create["responses"]["202"]["headers"])
    assert "429" in create["responses"] and "403" in create["responses"]
    listing = doc["paths"]["/api/public/clusters/v1/containers"]["get"]
    assert {"limit", "cursor", "status", "egg_id", "name_prefix"} <= {
        p["name"] for p in listing["parameters"]
    }
    assert "Next-Cursor" in listing["responses"]["200"]["headers"]
    logs = doc["paths"]["/api/public/clusters/v1/containers/{container_id}/logs"]["get"]
    assert {p["name"] for p in logs["parameters"]} == {"container_id", "tail", "since", "follow"}
    assert set(logs["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}


def test_the_document_is_one_json_value_served_as_is(api: Api) -> None:
    first = api.client.simulate_get("/openapi.json")
    again = api.client.simulate_get("/openapi.json")
    assert first.headers["content-type"].startswith("application/json")
    assert first.content == again.content
    assert json.loads(first.content) == document(api.client.app, version="0.1.0")


class _Forgotten:
    auth = PUBLIC

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {}


class _Drifted:
    auth = PUBLIC

    @responds(200, shapes.ApiKeyView)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"id": "k", "surprise": True}


class _Teapot:
    auth = PUBLIC

    @responds(200, shapes.ApiKeyView)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.status = falcon.HTTP_418
        resp.media = {"error": {"code": "teapot", "message": "short and stout"}}


def test_a_route_without_a_declaration_fails_the_document() -> None:
    app = falcon.App()
    app.add_route("/forgotten", _Forgotten())

    with pytest.raises(Undeclared, match="GET /forgotten"):
        document(app, version="test")


def test_an_answer_that_breaks_the_document_fails_the_test_that_receives_it() -> None:
    app = falcon.App()
    app.add_route("/drifted", _Drifted())

    with pytest.raises(AssertionError, match="breaks the document"):
        CheckedClient(app).simulate_get("/drifted")


def test_an_undeclared_status_fails_the_test_that_receives_it() -> None:
    app = falcon.App()
    app.add_route("/teapot", _Teapot())

    with pytest.raises(AssertionError, match="does not declare"):
        CheckedClient(app).simulate_get("/teapot")


def test_docs_serves_a_reference_page_with_its_assets_and_no_cdn(api: Api) -> None:
    page = api.client.simulate_get("/docs")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in page.text
    assert "http" not in page.text.lower().replace("http-equiv", "")  # nothing from elsewhere
    script = api.client.simulate_get("/docs/swagger-ui-bundle.js")
    css = api.client.simulate_get("/docs/swagger-ui.css")
    assert script.status_code == css.status_code == 200
    assert "SwaggerUIBundle" in script.text and len(script.content) > 100_000
    assert css.headers["content-type"].startswith("text/css")
    missing = api.client.simulate_get("/docs/../../etc/passwd")
    assert missing.status_code == 404
    assert api.client.simulate_get("/docs/index.html").status_code == 404
