"""not_found, method_not_allowed, the one error envelope, and no 500 for anything a
caller can send."""

from __future__ import annotations

import json

import pytest

from tests.fixtures.corral import Api, Tenant, error_of

PUBLIC = "/api/public/clusters/v1"
UNKNOWN_ID = "0c7d8a4e-0000-4000-8000-000000000000"
MALFORMED_IDS = [
    "é",
    "a b",
    "a%2Fb",
    "%00",
    "<script>",
    "a" * 81,
    "id;rm -rf",
    "'or'1'='1",
]


def authed(api: Api) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.tenant_key}"}


# -- not_found --------------------------------------------------------------------


def test_unknown_container_is_not_found_for_every_verb(tenant: Tenant, api: Api) -> None:
    cases = [
        ("GET", f"/containers/{UNKNOWN_ID}", None),
        ("PATCH", f"/containers/{UNKNOWN_ID}", {"name": "x"}),
        ("DELETE", f"/containers/{UNKNOWN_ID}", None),
        ("POST", f"/containers/{UNKNOWN_ID}/power", {"signal": "start"}),
    ]
    for method, path, body in cases:
        resp = api.tenant(method, path, body)
        assert error_of(resp) == (404, "not_found"), (method, path)
        assert "Container" in resp.json["error"]["message"]


def test_unknown_operation_is_not_found(tenant: Tenant, api: Api) -> None:
    for path in (f"/operations/{UNKNOWN_ID}", f"/operations/op-{'0' * 32}"):
        assert error_of(api.tenant("GET", path)) == (404, "not_found"), path
        wait = api.tenant("GET", f"{path}/wait", params={"timeout": "0.2"})
        assert error_of(wait) == (404, "not_found"), path


def test_a_container_id_is_not_an_operation_id_and_back(tenant: Tenant, api: Api) -> None:
    created = tenant.create().json
    container_id, operation_id = created["container"]["id"], created["operation"]["id"]

    assert error_of(api.tenant("GET", f"/operations/{container_id}")) == (404, "not_found")
    assert error_of(api.tenant("GET", f"/containers/{operation_id}")) == (404, "not_found")


def test_malformed_ids_are_not_found(tenant: Tenant, api: Api) -> None:
    for bad in MALFORMED_IDS:
        for method, path, body in [
            ("GET", f"/containers/{bad}", None),
            ("PATCH", f"/containers/{bad}", {"name": "x"}),
            ("DELETE", f"/containers/{bad}", None),
            ("POST", f"/containers/{bad}/power", {"signal": "start"}),
            ("GET", f"/operations/{bad}", None),
            ("GET", f"/operations/{bad}/wait", None),
        ]:
            resp = api.client.simulate_request(
                method, PUBLIC + path, headers=authed(api), json=body
            )
            assert error_of(resp) == (404, "not_found"), (method, path, resp.text)


def test_unknown_tenant_routes_are_not_found(tenant: Tenant, api: Api) -> None:
    for path in (
        "/nope",
        "/containers/a/b",
        "/containers/a/power/b",
        "/operation",
        "/operations/a/b",
        "/clusters",
        "/cluster/x",
    ):
        assert error_of(api.tenant("GET", path)) == (404, "not_found"), path


def test_unknown_routes_are_not_found_without_a_key(api: Api) -> None:
    for path in (
        "/index.html",
        "/api",
        "/api/public/clusters/v2/cluster",
        "/api/public/clusters/cluster",
    ):
        resp = api.client.simulate_get(path)
        assert error_of(resp) == (404, "not_found"), path
        assert resp.json["error"]["message"] == "Route does not exist."


# -- method_not_allowed -----------------------------------------------------------


def test_a_wrong_method_is_405_method_not_allowed(tenant: Tenant, api: Api) -> None:
    created = tenant.create().json
    cid, oid = created["container"]["id"], created["operation"]["id"]
    cases = [
        ("POST", "/cluster", "GET"),
        ("DELETE", "/cluster", "GET"),
        ("PUT", "/capacity", "GET"),
        ("POST", "/eggs", "GET"),
        ("PUT", "/containers", "GET, POST"),
        ("DELETE", "/containers", "GET, POST"),
        ("PATCH", "/containers", "GET, POST"),
        ("POST", f"/containers/{cid}", "DELETE, GET, PATCH"),
        ("PUT", f"/containers/{cid}", "DELETE, GET, PATCH"),
        ("GET", f"/containers/{cid}/power", "POST"),
        ("DELETE", f"/operations/{oid}", "GET"),
        ("POST", f"/operations/{oid}/wait", "GET"),
    ]
    for method, path, allowed in cases:
        resp = api.client.simulate_request(method, PUBLIC + path, headers=authed(api), json={})
        assert error_of(resp) == (405, "method_not_allowed"), (method, path, resp.text)
        allow = {m.strip() for m in resp.headers.get("allow", "").split(",")}
        assert {m.strip() for m in allowed.split(",")} <= allow, (method, path, allow)
    # None of them changed anything.
    container = api.tenant("GET", f"/containers/{cid}").json
    assert container["pending_operation"] == oid
    assert container["status"] == "provisioning"


# -- nothing a caller sends is a 500 ----------------------------------------------


def test_odd_requests_never_answer_500(tenant: Tenant, api: Api) -> None:
    cid = tenant.create().json["container"]["id"]
    bodies: list[str | bytes] = [
        "",
        "{",
        "[]",
        "null",
        "true",
        "1e999",
        '{"name": {"$gt": ""}}',
        '{"egg_id": ["a"]}',
        '{"name": "\\ud800"}',
        '{"signal": null}',
        '{"resources": null}',
        '{"resources": []}',
        '{"resources": {"ram_mb": {"$inc": 1}}}',
        b"\x00\x01\x02",
        "\ufeff{}",
        json.dumps({"name": "x" * 60_000}),
        '{"a":' * 100 + "1" + "}" * 100,
    ]
    paths = [
        ("POST", "/containers"),
        ("PATCH", f"/containers/{cid}"),
        ("POST", f"/containers/{cid}/power"),
    ]
    for method, path in paths:
        for body in bodies:
            for content_type in ("application/json", "text/plain", None):
                headers = authed(api)
                if content_type:
                    headers["Content-Type"] = content_type
                resp = api.client.simulate_request(
                    method, PUBLIC + path, body=body, headers=headers
                )
                status, code = error_of(resp)
                assert status < 500, (method, path, body[:40], content_type, resp.text)
                assert code != "server_error"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\xff\xfe\x00{", "Request body is not valid JSON."),
        (b'{"name": "\xc3\x28"}', "Request body is not valid JSON."),
        (b"{", "Request body is not valid JSON."),
        (b'{"name": "web"} trailing', "Request body is not valid JSON."),
        (b"[]", "Request body must be a JSON object."),
        (b'"web"', "Request body must be a JSON object."),
        (b"42", "Request body must be a JSON object."),
        (b"1e999", "Request body must be a JSON object."),
        (b"NaN", "Request body must be a JSON object."),
        (b"", "Request body is required."),
    ],
)
def test_a_body_that_is_no_json_object_is_invalid_input(
    tenant: Tenant, api: Api, body: bytes, message: str
) -> None:
    resp = api.client.simulate_post(
        PUBLIC + "/containers",
        body=body,
        headers=authed(api) | {"Content-Type": "application/json"},
    )
    assert error_of(resp) == (400, "invalid_input")
    assert resp.json["error"]["message"] == message


@pytest.mark.parametrize(
    ("field", "literal"),
    [
        ("cpu_cores", "NaN"),
        ("cpu_cores", "Infinity"),
        ("cpu_cores", "-Infinity"),
        ("cpu_cores", "1e999"),
        ("ram_mb", "9" * 400),
        ("ram_mb", "1e400"),
    ],
)
def test_numbers_json_cannot_hold_are_invalid_input_at_their_field(
    tenant: Tenant, api: Api, field: str, literal: str
) -> None:
    body = f'{{"name": "web", "egg_id": "{tenant.egg["id"]}", "{field}": {literal}}}'
    resp = api.client.simulate_post(
        PUBLIC + "/containers",
        body=body,
        headers=authed(api) | {"Content-Type": "application/json"},
    )
    assert error_of(resp) == (400, "invalid_input")
    assert [d["loc"] for d in resp.json["error"]["details"]] == [field]


def test_the_last_of_duplicate_keys_counts(tenant: Tenant, api: Api) -> None:
    body = f'{{"name": 5, "egg_id": "{tenant.egg["id"]}", "name": "second"}}'
    resp = api.client.simulate_post(
        PUBLIC + "/containers",
        body=body,
        headers=authed(api) | {"Content-Type": "application/json"},
    )
    assert resp.status_code == 202, resp.text
    assert resp.json["container"]["name"] == "second"


@pytest.mark.parametrize("depth", [5_000, 30_000])
def test_deeply_nested_json_is_invalid_input(tenant: Tenant, api: Api, depth: int) -> None:
    body = '{"name": ' + "[" * depth + "]" * depth + "}"
    assert len(body) < 65_536

    resp = api.client.simulate_post(
        PUBLIC + "/containers",
        body=body,
        headers=authed(api) | {"Content-Type": "application/json"},
    )

    assert error_of(resp) == (400, "invalid_input")


def test_what_the_fuzzer_found_is_a_4xx_in_the_envelope(tenant: Tenant, api: Api) -> None:
    # Issue 12, defect 2: each of these answered 500 server_error (an OverflowError in
    # request parsing, then in comparing dates).
    cid = tenant.create().json["container"]["id"]
    huge_negative = '{"resources": {"cpu_cores": -1.7976931348623157e+308}}'
    far_offset = '"9999-12-31T23:59:59-23:59"'
    create = f'{{"name": "web", "egg_id": "{tenant.egg["id"]}", '
    for method, path, body in [
        ("POST", "/containers", create + '"cpu_cores": -1.7976931348623157e+308}'),
        ("POST", "/containers", create + f'"expires_at": {far_offset}}}'),
        ("PATCH", f"/containers/{cid}", huge_negative),
        ("POST", f"/containers/{cid}/lease", f'{{"expires_at": {far_offset}}}'),
    ]:
        resp = api.client.simulate_request(
            method,
            PUBLIC + path,
            body=body,
            headers=authed(api) | {"Content-Type": "application/json"},
        )
        assert error_of(resp) in {(400, "invalid_input"), (400, "below_minimum")}, (body, resp.text)
