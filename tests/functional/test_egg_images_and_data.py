"""Eggs' images, data paths and registry credentials through the operator API: what is
refused (a clear 400 in the envelope), what is stored (the password sealed) and what
no route ever shows (the password)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import falcon.testing
import pytest

from handlers.app import create_app
from services.deps import Deps
from shared.sealing import new_key
from shared.settings import Settings
from tests.fixtures.corral import Api, Tenant, error_of

SECRET = "hunter2-registry-password"
AUTH = {"username": "puller", "password": SECRET}


def _egg(**fields: Any) -> dict[str, Any]:
    body = {"name": "app", "image": "registry.example:5000/team/app:1.2"}
    return body | {"minimum": {"cpu_cores": 0.1, "ram_mb": 16}} | fields


@pytest.mark.parametrize(
    "image",
    [
        "registry.example:5000/team/app:1.2",
        "busybox",
        "127.0.0.1:5000/corral/busybox:v1",
        "team/app@sha256:" + "0" * 64,
        "localhost/app:latest",
    ],
)
def test_any_image_reference_is_taken(api: Api, image: str) -> None:
    resp = api.admin("POST", "/eggs", _egg(image=image))
    assert resp.status_code == 201, resp.text
    assert resp.json["image"] == image


@pytest.mark.parametrize(
    "image",
    ["Team/App", "app:bad tag", "app@sha256:short", "a:1:2", "registry:99999/app", " app"],
)
def test_an_image_that_is_no_reference_is_refused(api: Api, image: str) -> None:
    assert error_of(api.admin("POST", "/eggs", _egg(image=image))) == (400, "invalid_input")
    egg = api.admin("POST", "/eggs", _egg()).json
    patched = api.admin("PATCH", f"/eggs/{egg['id']}", {"image": image})
    assert error_of(patched) == (400, "invalid_input")
    assert api.admin("GET", f"/eggs/{egg['id']}").json["image"] == egg["image"]


def test_data_path_defaults_to_data_and_is_checked(api: Api) -> None:
    assert api.admin("POST", "/eggs", _egg()).json["data_path"] == "/data"
    assert api.admin("POST", "/eggs", _egg(data_path="/srv/x/")).json["data_path"] == "/srv/x"
    for bad in ("relative", "/", "/a/../etc", "/a b", "/a;rm"):
        resp = api.admin("POST", "/eggs", _egg(data_path=bad))
        assert error_of(resp) == (400, "invalid_input"), bad


def test_registry_auth_is_stored_sealed_and_never_shown(api: Api, deps: Deps) -> None:
    resp = api.admin("POST", "/eggs", _egg(registry_auth=AUTH))
    assert resp.status_code == 201, resp.text
    egg = resp.json
    assert egg["registry_auth"] == {"username": "puller"}
    shown = [
        resp.text,
        api.admin("GET", f"/eggs/{egg['id']}").text,
        api.admin("GET", "/eggs").text,
        api.admin("GET", "/templates").text,
    ]
    assert all(SECRET not in text for text in shown)
    item = deps.repo.db.get(f"EGG#{egg['id']}", "#META")
    assert item is not None and SECRET not in json.dumps(item, default=str)
    assert item["registry_auth"]["username"] == "puller"

    renamed = api.admin("PATCH", f"/eggs/{egg['id']}", {"name": "renamed"}).json
    assert renamed["registry_auth"] == {"username": "puller"}  # left out: kept
    removed = api.admin("PATCH", f"/eggs/{egg['id']}", {"registry_auth": None}).json
    assert removed["registry_auth"] is None


def test_tenants_never_see_registry_credentials(api: Api, tenant: Tenant) -> None:
    api.admin("PATCH", f"/eggs/{tenant.egg['id']}", {"registry_auth": AUTH})
    listed = api.tenant("GET", "/eggs")
    assert listed.status_code == 200, listed.text
    assert "registry_auth" not in listed.json[0]
    assert SECRET not in listed.text and "puller" not in listed.text


@pytest.mark.parametrize(
    "auth",
    [{"username": "u"}, {"username": "", "password": "p"}, {"username": "u", "password": 3}, "u:p"],
)
def test_malformed_registry_auth_is_refused(api: Api, auth: Any) -> None:
    resp = api.admin("POST", "/eggs", _egg(registry_auth=auth))
    assert error_of(resp) == (400, "invalid_input")


def test_registry_auth_is_refused_without_a_secret_key(deps: Deps, operator_key: str) -> None:
    keyless = dataclasses.replace(
        deps, settings=dataclasses.replace(deps.settings, secret_key=None)
    )
    api = Api(falcon.testing.TestClient(create_app(keyless)), operator_key)
    resp = api.admin("POST", "/eggs", _egg(registry_auth=AUTH))
    assert error_of(resp) == (400, "invalid_input")
    assert "CORRAL_SECRET_KEY" in resp.json["error"]["message"]


def test_a_malformed_secret_key_stops_startup_with_what_to_do() -> None:
    with pytest.raises(SystemExit, match="CORRAL_SECRET_KEY"):
        Settings.from_env({"CORRAL_SECRET_KEY": "not-a-key"})
    with pytest.raises(SystemExit, match="32 bytes"):
        Settings.from_env({"CORRAL_SECRET_KEY": "c2hvcnQ="})
    key = new_key()
    assert Settings.from_env({"CORRAL_SECRET_KEY": key}).secret_key == key
    assert key not in repr(Settings.from_env({"CORRAL_SECRET_KEY": key}))


# -- operators' image routes ------------------------------------------------------------

UNKNOWN_ID = "0c7d8a4e-0000-4000-8000-000000000000"


@pytest.mark.parametrize(
    "body",
    [
        {"image": "Not A Ref"},
        {},
        {"image": "busybox", "host_ids": []},
        {"image": "busybox", "host_ids": "all"},
        {"image": "busybox", "extra": 1},
    ],
)
def test_a_bad_pull_request_is_refused(api: Api, body: Any) -> None:
    api.make_host()
    assert error_of(api.admin("POST", "/images/pull", body)) == (400, "invalid_input")


def test_a_pull_needs_hosts_that_exist(api: Api) -> None:
    resp = api.admin("POST", "/images/pull", {"image": "busybox"})
    assert error_of(resp) == (409, "no_host_available")
    resp = api.admin("POST", "/images/pull", {"image": "busybox", "host_ids": [UNKNOWN_ID]})
    assert error_of(resp) == (404, "not_found")
    host = api.make_host()
    resp = api.admin(
        "POST", "/images/pull", {"image": "busybox", "host_ids": [host["id"]], "egg_id": UNKNOWN_ID}
    )
    assert error_of(resp) == (404, "not_found")


def test_a_pull_is_one_operation_per_host_readable_by_operators_only(
    api: Api, tenant: Tenant
) -> None:
    other = api.make_host()
    resp = api.admin("POST", "/images/pull", {"image": "team/app:2"})
    assert resp.status_code == 202, resp.text
    ops = resp.json["operations"]
    assert sorted(op["params"]["host_id"] for op in ops) == sorted([tenant.host["id"], other["id"]])
    assert {op["container_id"] for op in ops} == {None}
    for op in ops:
        assert api.admin("GET", f"/operations/{op['id']}").json["status"] == "queued"
        assert error_of(api.tenant("GET", f"/operations/{op['id']}")) == (404, "not_found")
    assert error_of(api.admin("GET", f"/operations/op-{'0' * 32}")) == (404, "not_found")


@pytest.mark.parametrize(
    "query",
    [{"image": "busybox"}, {"host_id": UNKNOWN_ID}, {"image": "x y", "host_id": UNKNOWN_ID}],
)
def test_a_bad_image_delete_is_refused(api: Api, query: dict[str, str]) -> None:
    assert error_of(api.admin("DELETE", "/images", params=query)) == (400, "invalid_input")


def test_an_image_delete_on_an_unknown_host_is_not_found(api: Api) -> None:
    resp = api.admin("DELETE", "/images", {"image": "busybox", "host_id": UNKNOWN_ID})
    assert error_of(resp) == (404, "not_found")
