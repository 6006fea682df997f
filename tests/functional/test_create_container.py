"""POST /containers: what it reserves and answers, and every way it refuses.

Refusal cases run in a loop against one cluster (a fresh table per case would
cost more than the case); each failure names its case."""

from __future__ import annotations

import json
from typing import Any

import falcon.testing

from tests.fixtures.corral import REFERENCE_ALLOCATION, Api, Tenant, error_of, make_tenant

PUBLIC = "/api/public/clusters/v1"
EGG_DEFAULTS = {
    "cpu_cores": 0.5,
    "ram_mb": 64,
    "storage_mb": 256,
    "io": 100,
    "ports": 0,
    "databases": 0,
    "backups": 0,
}


def raw(
    api: Api, method: str, path: str, body: str | bytes, content_type: str | None
) -> falcon.testing.Result:
    headers = {"Authorization": f"Bearer {api.tenant_key}"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    return api.client.simulate_request(method, PUBLIC + path, body=body, headers=headers)


def assert_nothing_reserved(api: Api) -> None:
    assert api.tenant("GET", "/containers").json == []
    used = api.tenant("GET", "/cluster").json["used"]
    assert set(used.values()) == {0}, used


# -- accepted ---------------------------------------------------------------------


def test_create_answers_202_with_container_and_operation(tenant: Tenant) -> None:
    resp = tenant.create(name="build-runner")

    assert resp.status_code == 202, resp.text
    container, operation = resp.json["container"], resp.json["operation"]
    assert container["name"] == "build-runner"
    assert container["egg_id"] == tenant.egg["id"]
    assert container["engine"] == "docker"
    assert container["status"] == "provisioning"
    assert container["pending_operation"] == operation["id"]
    assert container["error"] is None
    assert operation["kind"] == "provision"
    assert operation["status"] == "queued"
    assert operation["container_id"] == container["id"]


def test_create_takes_the_eggs_defaults_for_missing_fields(tenant: Tenant) -> None:
    resp = tenant.create()

    assert resp.status_code == 202, resp.text
    assert resp.json["container"]["resources"] == EGG_DEFAULTS


def test_create_with_some_fields_keeps_the_defaults_for_the_rest(tenant: Tenant) -> None:
    resp = tenant.create(ram_mb=128, ports=2)

    assert resp.status_code == 202, resp.text
    assert resp.json["container"]["resources"] == EGG_DEFAULTS | {"ram_mb": 128, "ports": 2}


def test_create_with_every_field_as_in_the_contract(tenant: Tenant, api: Api) -> None:
    fields = REFERENCE_ALLOCATION

    resp = tenant.create(name="build-runner", **fields)

    assert resp.status_code == 202, resp.text
    assert resp.json["container"]["resources"] == fields
    assert api.tenant("GET", "/cluster").json["used"] == fields | {"containers": 1}


def test_create_accepts_two_decimal_cores_and_exact_fits(api: Api) -> None:
    tenant = make_tenant(api, cpu_cores=1, ram_mb=160)

    first = tenant.create(cpu_cores=0.33, ram_mb=80)
    second = tenant.create(cpu_cores=0.67, ram_mb=80)

    assert first.status_code == 202, first.text
    assert second.status_code == 202, second.text
    assert first.json["container"]["resources"]["cpu_cores"] == 0.33
    used = api.tenant("GET", "/cluster").json["used"]
    assert used["cpu_cores"] == 1
    assert used["ram_mb"] == 160
    remaining = api.tenant("GET", "/cluster").json["remaining"]
    assert remaining["cpu_cores"] == 0
    assert remaining["ram_mb"] == 0


def test_create_strips_the_name(tenant: Tenant) -> None:
    resp = tenant.create(name="  web-1  ")

    assert resp.status_code == 202, resp.text
    assert resp.json["container"]["name"] == "web-1"


def test_create_accepts_a_64_character_unicode_name(tenant: Tenant) -> None:
    name = "é" * 64
    resp = tenant.create(name=name)

    assert resp.status_code == 202, resp.text
    assert resp.json["container"]["name"] == name


def test_create_accepts_a_charset_in_the_content_type(tenant: Tenant, api: Api) -> None:
    body = json.dumps({"name": "web", "egg_id": tenant.egg["id"]})

    resp = raw(api, "POST", "/containers", body, "application/json; charset=utf-8")

    assert resp.status_code == 202, resp.text


# -- invalid_input ----------------------------------------------------------------


def test_create_refuses_bodies_that_are_not_a_json_object(tenant: Tenant, api: Api) -> None:
    valid = json.dumps({"name": "web", "egg_id": tenant.egg["id"]})
    cases: list[tuple[str, str | bytes, str | None]] = [
        ("malformed JSON", '{"name": "web", ', "application/json"),
        ("trailing garbage", valid + "}", "application/json"),
        ("single quotes", "{'name': 'web'}", "application/json"),
        ("array", "[]", "application/json"),
        ("array of the object", f"[{valid}]", "application/json"),
        ("string", '"web"', "application/json"),
        ("number", "1", "application/json"),
        ("null", "null", "application/json"),
        ("empty body", "", "application/json"),
        ("empty body, no content type", "", None),
        ("not UTF-8", b"\xff\xfe\xfa", "application/json"),
        ("text/plain", valid, "text/plain"),
        ("form", "name=web", "application/x-www-form-urlencoded"),
        ("xml", "<name>web</name>", "application/xml"),
    ]
    for case, body, content_type in cases:
        resp = raw(api, "POST", "/containers", body, content_type)
        assert error_of(resp) == (400, "invalid_input"), (case, resp.text)
    assert_nothing_reserved(api)


def test_create_refuses_invalid_fields(tenant: Tenant, api: Api) -> None:
    egg = tenant.egg["id"]
    ok = {"name": "web", "egg_id": egg}
    cases: list[tuple[str, dict[str, Any]]] = [
        ("unknown field", ok | {"colour": "blue"}),
        ("nested resources on create", ok | {"resources": {"ram_mb": 128}}),
        ("missing name", {"egg_id": egg}),
        ("missing egg_id", {"name": "web"}),
        ("null name", ok | {"name": None}),
        ("number as name", ok | {"name": 5}),
        ("number as egg_id", ok | {"egg_id": 5}),
        ("empty egg_id", ok | {"egg_id": ""}),
        ("egg_id with a slash", ok | {"egg_id": "../eggs"}),
        ("string for ram_mb", ok | {"ram_mb": "128"}),
        ("string for cpu_cores", ok | {"cpu_cores": "1"}),
        ("boolean for ram_mb", ok | {"ram_mb": True}),
        ("boolean for cpu_cores", ok | {"cpu_cores": True}),
        ("boolean for ports", ok | {"ports": False}),
        ("fraction for ram_mb", ok | {"ram_mb": 1.5}),
        ("list for io", ok | {"io": [100]}),
        ("object for storage_mb", ok | {"storage_mb": {"mb": 1}}),
        ("three decimals of cpu", ok | {"cpu_cores": 0.125}),
        ("a thousandth of a core", ok | {"cpu_cores": 0.001}),
        ("three decimals above one", ok | {"cpu_cores": 1.005}),
        ("name too long", ok | {"name": "a" * 65}),
        ("empty name", ok | {"name": ""}),
        ("blank name", ok | {"name": "   "}),
        ("newline in name", ok | {"name": "a\nb"}),
        ("NUL in name", ok | {"name": "a\x00b"}),
        ("DEL in name", ok | {"name": "a\x7fb"}),
        ("escape in name", ok | {"name": "\x1b[31mred"}),
        ("ram above the type bound", ok | {"ram_mb": 16 * 1024 * 1024 + 1}),
        ("cpu above the type bound", ok | {"cpu_cores": 1025}),
        ("io above the type bound", ok | {"io": 1001}),
        ("ports above the type bound", ok | {"ports": 1001}),
        ("storage above the type bound", ok | {"storage_mb": 1024**3 + 1}),
        ("ram of 10^30", ok | {"ram_mb": 10**30}),
        ("cpu of 1e300", ok | {"cpu_cores": 1e300}),
    ]
    for case, body in cases:
        resp = api.tenant("POST", "/containers", body)
        assert error_of(resp) == (400, "invalid_input"), (case, resp.text)
    assert_nothing_reserved(api)


def test_create_refuses_non_finite_numbers(tenant: Tenant, api: Api) -> None:
    prefix = f'{{"name": "web", "egg_id": "{tenant.egg["id"]}", '
    for field in ("cpu_cores", "ram_mb"):
        for literal in ("NaN", "Infinity", "-Infinity", "1e400"):
            resp = raw(api, "POST", "/containers", prefix + f'"{field}": {literal}}}', None)
            assert error_of(resp) == (400, "invalid_input"), (field, literal, resp.text)
    assert_nothing_reserved(api)


def test_validation_errors_say_where_and_what(tenant: Tenant, api: Api) -> None:
    resp = tenant.create(ram_mb="lots", colour="blue")

    assert resp.status_code == 400, resp.text
    error = resp.json["error"]
    assert error["code"] == "invalid_input"
    assert "ram_mb" in error["message"]
    assert "colour" in error["message"]
    assert "Traceback" not in error["message"]
    assert ".py" not in error["message"]


def test_create_refuses_a_body_over_the_size_limit(tenant: Tenant, api: Api) -> None:
    body = json.dumps({"name": "web", "egg_id": tenant.egg["id"], "pad": "x" * 70_000})

    resp = raw(api, "POST", "/containers", body, "application/json")

    assert error_of(resp) == (413, "payload_too_large")
    assert_nothing_reserved(api)


# -- below_minimum ----------------------------------------------------------------


def test_create_refuses_allocations_below_a_minimum(tenant: Tenant, api: Api) -> None:
    # The egg's minimum is 0.1 core, 16 MB of RAM, 0 storage; nothing may be negative.
    cases: list[tuple[str, dict[str, Any]]] = [
        ("cpu_cores", {"cpu_cores": 0.05}),
        ("cpu_cores", {"cpu_cores": 0}),
        ("cpu_cores", {"cpu_cores": -1}),
        ("cpu_cores", {"cpu_cores": 1e-9}),
        ("ram_mb", {"ram_mb": 15}),
        ("ram_mb", {"ram_mb": 0}),
        ("ram_mb", {"ram_mb": -64}),
        ("ram_mb", {"ram_mb": -(10**30)}),
        ("storage_mb", {"storage_mb": -1}),
        ("io", {"io": -1}),
        ("ports", {"ports": -1}),
        ("databases", {"databases": -1}),
        ("backups", {"backups": -5}),
    ]
    for field, fields in cases:
        resp = tenant.create(**fields)
        assert error_of(resp) == (400, "below_minimum"), (fields, resp.text)
        assert field in resp.json["error"]["message"], (fields, resp.text)
    assert_nothing_reserved(api)


def test_below_minimum_names_the_eggs_minimum(tenant: Tenant) -> None:
    resp = tenant.create(ram_mb=8)

    assert resp.json["error"]["message"] == "ram_mb is below its minimum of 16 for egg busybox."


def test_an_egg_without_minimum_still_has_the_absolute_floors(api: Api) -> None:
    egg = api.make_egg(name="tiny", minimum={}, defaults={"cpu_cores": 0.01, "ram_mb": 6})
    cluster = api.make_cluster([egg["id"]])
    api.make_host()
    api.tenant_key = api.make_key(cluster["id"])

    at_floor = api.tenant("POST", "/containers", {"name": "a", "egg_id": egg["id"]})
    below_ram = api.tenant("POST", "/containers", {"name": "b", "egg_id": egg["id"], "ram_mb": 5})
    no_cpu = api.tenant("POST", "/containers", {"name": "c", "egg_id": egg["id"], "cpu_cores": 0})

    assert at_floor.status_code == 202, at_floor.text
    assert error_of(below_ram) == (400, "below_minimum")
    assert error_of(no_cpu) == (400, "below_minimum")


# -- egg_not_allowed --------------------------------------------------------------


def test_create_refuses_an_egg_outside_the_whitelist(tenant: Tenant, api: Api) -> None:
    outside = api.make_egg(name="outside")
    cases = [
        ("existing egg not allowed", outside["id"]),
        ("unknown uuid", "0c7d8a4e-0000-4000-8000-000000000000"),
        ("unknown word", "minecraft"),
    ]
    for case, egg_id in cases:
        resp = api.tenant("POST", "/containers", {"name": "web", "egg_id": egg_id})
        assert error_of(resp) == (400, "egg_not_allowed"), (case, resp.text)
    assert_nothing_reserved(api)


# -- capacity_exceeded ------------------------------------------------------------


def test_create_refuses_each_resource_beyond_the_pool(api: Api) -> None:
    tenant = make_tenant(api, io=500)
    cases: list[tuple[dict[str, float], str]] = [
        ({"cpu_cores": 4.01}, "CPU"),
        ({"cpu_cores": 1024}, "CPU"),
        ({"ram_mb": 4097}, "RAM"),
        ({"ram_mb": 16_000_000}, "RAM"),
        ({"storage_mb": 20481}, "storage"),
        ({"storage_mb": 1024**3}, "storage"),
        ({"io": 501}, "IO"),
        ({"ports": 11}, "ports"),
        ({"databases": 3}, "databases"),
        ({"backups": 3}, "backups"),
    ]
    for fields, what in cases:
        resp = tenant.create(**fields)
        assert error_of(resp) == (409, "capacity_exceeded"), (fields, resp.text)
        assert resp.json["error"]["message"] == f"Not enough {what} left in the pool.", fields
    assert_nothing_reserved(api)


def test_create_refuses_what_no_longer_fits_after_others(api: Api) -> None:
    tenant = make_tenant(api)
    assert tenant.create(ram_mb=4000).status_code == 202
    before = api.tenant("GET", "/cluster").json["used"]

    resp = tenant.create(ram_mb=97)

    assert error_of(resp) == (409, "capacity_exceeded")
    assert api.tenant("GET", "/cluster").json["used"] == before
    assert len(api.tenant("GET", "/containers").json) == 1
    assert tenant.create(ram_mb=96).status_code == 202


# -- container_limit_reached ------------------------------------------------------


def test_create_refuses_past_the_container_limit(api: Api) -> None:
    tenant = make_tenant(api, containers=2)
    assert tenant.create(name="a").status_code == 202
    assert tenant.create(name="b").status_code == 202
    before = api.tenant("GET", "/cluster").json["used"]

    resp = tenant.create(name="c", ram_mb=16)

    assert error_of(resp) == (409, "container_limit_reached")
    assert "2" in resp.json["error"]["message"]
    assert api.tenant("GET", "/cluster").json["used"] == before
    assert len(api.tenant("GET", "/containers").json) == 2


def test_a_plan_without_container_slots_takes_none(api: Api) -> None:
    tenant = make_tenant(api, containers=0)

    assert error_of(tenant.create()) == (409, "container_limit_reached")
