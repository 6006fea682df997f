"""Operator API, eggs and templates: create, list, get, PATCH and DELETE eggs (refused
while a cluster allows them), and templates (eggs with their parameters) instantiated
into a cluster."""

from __future__ import annotations

from typing import Any

from services.deps import Deps
from tests.fixtures.corral import Api, Tenant, error_of

UNKNOWN_ID = "0c7d8a4e-0000-4000-8000-000000000000"
EGG: dict[str, Any] = {
    "name": "nginx",
    "description": "A web server",
    "engine": "docker",
    "image": "nginx:1.27",
    "command": ["nginx", "-g", "daemon off;"],
    "environment": {"MODE": "prod", "corral.tier": "web"},
    "minimum": {"cpu_cores": 0.25, "ram_mb": 32},
    "defaults": {"cpu_cores": 0.5, "ram_mb": 128, "storage_mb": 512, "io": 200, "ports": 1},
    "stop_timeout": 20,
}


def resources(**given: Any) -> dict[str, Any]:
    zero = {"cpu_cores": 0.0, "ram_mb": 0, "storage_mb": 0, "io": 0}
    return zero | {"ports": 0, "databases": 0, "backups": 0} | given


# -- eggs ---------------------------------------------------------------------------


def test_create_list_and_get_an_egg(api: Api) -> None:
    resp = api.admin("POST", "/eggs", EGG)

    assert resp.status_code == 201, resp.text
    egg = resp.json
    assert {k: egg[k] for k in ("name", "description", "engine", "image", "command")} == {
        k: EGG[k] for k in ("name", "description", "engine", "image", "command")
    }
    assert egg["environment"] == EGG["environment"]
    assert egg["minimum"] == resources(cpu_cores=0.25, ram_mb=32)
    assert egg["defaults"] == resources(**EGG["defaults"])
    assert egg["stop_timeout"] == 20
    assert "vm" not in egg  # docker eggs have no vm settings
    assert api.admin("GET", f"/eggs/{egg['id']}").json == egg
    assert api.admin("GET", "/eggs").json == [egg]


def test_missing_defaults_are_the_minimums(api: Api) -> None:
    body = {"name": "tiny", "image": "busybox", "minimum": {"cpu_cores": 0.1, "ram_mb": 16}}
    egg = api.admin("POST", "/eggs", body).json

    assert egg["engine"] == "docker"
    assert egg["command"] is None
    assert egg["environment"] == {} and egg["description"] == ""
    assert egg["stop_timeout"] == 10
    assert egg["defaults"] == egg["minimum"] == resources(cpu_cores=0.1, ram_mb=16)


def test_a_qemu_egg_keeps_its_vm_settings(api: Api) -> None:
    body = {
        "name": "alpine-vm",
        "engine": "qemu",
        "image": "alpine.qcow2",
        "minimum": {"cpu_cores": 1, "ram_mb": 64, "storage_mb": 64},
        "vm": {"kernel": "vmlinuz", "initrd": "initrd.img", "kernel_args": "console=ttyS0"},
    }
    resp = api.admin("POST", "/eggs", body)

    assert resp.status_code == 201, resp.text
    assert resp.json["engine"] == "qemu"
    assert resp.json["vm"] == body["vm"]
    patched = api.admin("PATCH", f"/eggs/{resp.json['id']}", {"vm": {"kernel": "bzImage"}})
    assert patched.status_code == 200 and patched.json["vm"] == {"kernel": "bzImage"}


def test_egg_create_is_validated(api: Api) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"defaults": {"ram_mb": 16}}, "below its minimums"),
        ({"defaults": {"cpu_cores": 0.1}}, "below its minimums"),
        ({"minimum": {"ram_mb": 256}}, "below its minimums"),  # above the given defaults
        ({"engine": "podman"}, "engine"),
        ({"engine": "firecracker"}, "engine"),
        ({"engine": "DOCKER"}, "engine"),
        ({"vm": {"kernel": "vmlinuz"}}, "qemu"),  # vm settings on a docker egg
        ({"image": ""}, "image"),
        ({"name": "   "}, "name"),
        ({"stop_timeout": 3601}, "stop_timeout"),
        ({"stop_timeout": -1}, "stop_timeout"),
        ({"minimum": {"ram_mb": -1}}, "minimum.ram_mb"),
        ({"defaults": {"io": 1001}}, "defaults.io"),
        ({"defaults": {"cpu_cores": 0.123}}, "defaults.cpu_cores"),
        ({"environment": {"BAD KEY": "x"}}, "environment"),
        ({"command": "nginx -g 'daemon off;'"}, "command"),
    ]
    for change, words in cases:
        resp = api.admin("POST", "/eggs", EGG | change)
        assert error_of(resp) == (400, "invalid_input"), change
        assert words in resp.json["error"]["message"], (change, resp.text)
    qemu = {"name": "vm", "engine": "qemu", "image": "a.qcow2", "minimum": {"cpu_cores": 1}}
    for vm in ({"kernel": "../etc/passwd"}, {"initrd": "initrd.img"}, {"kernel_args": "a\nb"}):
        assert error_of(api.admin("POST", "/eggs", qemu | {"vm": vm})) == (400, "invalid_input")
    assert api.admin("GET", "/eggs").json == []


def test_patch_changes_only_what_is_given(api: Api) -> None:
    egg = api.admin("POST", "/eggs", EGG).json
    path = f"/eggs/{egg['id']}"

    resp = api.admin(
        "PATCH",
        path,
        {"name": "nginx-2", "image": "nginx:1.28", "defaults": {"ram_mb": 256}, "command": []},
    )

    assert resp.status_code == 200, resp.text
    changed = resp.json
    assert (changed["name"], changed["image"], changed["command"]) == ("nginx-2", "nginx:1.28", [])
    assert changed["defaults"] == egg["defaults"] | {"ram_mb": 256}
    assert changed["minimum"] == egg["minimum"]
    assert changed["environment"] == egg["environment"]
    assert changed["id"] == egg["id"] and changed["created_at"] == egg["created_at"]
    assert api.admin("GET", path).json == changed


def test_patch_is_validated_and_changes_nothing_when_refused(api: Api) -> None:
    egg = api.admin("POST", "/eggs", EGG).json
    path = f"/eggs/{egg['id']}"
    for body, words in [
        ({"defaults": {"ram_mb": 16}}, "below its minimums"),
        ({"minimum": {"cpu_cores": 1}}, "below its minimums"),
        ({"engine": "qemu"}, "engine"),
        ({"vm": {"kernel": "vmlinuz"}}, "qemu"),
        ({"name": ""}, "name"),
        ({"id": UNKNOWN_ID}, "id"),
    ]:
        resp = api.admin("PATCH", path, body)
        assert error_of(resp) == (400, "invalid_input"), body
        assert words in resp.json["error"]["message"], (body, resp.text)
    assert api.admin("GET", path).json == egg


def test_an_egg_allowed_in_a_cluster_cannot_be_deleted(api: Api, tenant: Tenant) -> None:
    egg_id = tenant.egg["id"]
    other = api.make_cluster([egg_id])
    api.admin("PATCH", f"/clusters/{other['id']}", {"name": "zeta"})

    refused = api.admin("DELETE", f"/eggs/{egg_id}")

    assert error_of(refused) == (409, "conflict")
    assert "c, zeta" in refused.json["error"]["message"]  # the clusters that allow it
    assert api.admin("GET", f"/eggs/{egg_id}").status_code == 200

    for cluster_id in (tenant.cluster["id"], other["id"]):
        api.admin("PATCH", f"/clusters/{cluster_id}", {"egg_ids": []})
    deleted = api.admin("DELETE", f"/eggs/{egg_id}")

    assert deleted.status_code == 204, deleted.text
    assert error_of(api.admin("GET", f"/eggs/{egg_id}")) == (404, "not_found")
    assert error_of(api.admin("DELETE", f"/eggs/{egg_id}")) == (404, "not_found")
    assert api.admin("GET", "/eggs").json == []
    assert api.admin("GET", "/templates").json == []


def test_unknown_or_malformed_eggs_are_not_found(api: Api) -> None:
    for egg_id in (UNKNOWN_ID, "x" * 81, "a%20b"):
        for method, path, body in [
            ("GET", f"/eggs/{egg_id}", None),
            ("PATCH", f"/eggs/{egg_id}", {"name": "x"}),
            ("DELETE", f"/eggs/{egg_id}", None),
            ("GET", f"/templates/{egg_id}", None),
            ("POST", f"/templates/{egg_id}/instantiate", {"cluster_id": "c", "name": "x"}),
        ]:
            assert error_of(api.admin(method, path, body)) == (404, "not_found"), (method, path)


# -- templates ------------------------------------------------------------------------


def test_templates_are_eggs_with_their_parameters(api: Api) -> None:
    egg = api.admin("POST", "/eggs", EGG).json

    listed = api.admin("GET", "/templates").json
    single = api.admin("GET", f"/templates/{egg['id']}").json

    assert listed == [single]
    assert {k: v for k, v in single.items() if k != "parameters"} == egg
    params = {p["name"]: p for p in single["parameters"]}
    assert params["cluster_id"] == {"name": "cluster_id", "type": "string", "required": True}
    assert params["name"]["required"] is True
    assert params["constraints"] == {"name": "constraints", "type": "object", "required": False}
    assert params["resources.ram_mb"] == {
        "name": "resources.ram_mb",
        "type": "number",
        "required": False,
        "default": 128,
        "minimum": 32,
    }
    assert params["resources.cpu_cores"]["default"] == 0.5
    assert params["resources.cpu_cores"]["minimum"] == 0.25
    assert {n for n in params if n.startswith("resources.")} == {
        f"resources.{f}"
        for f in ("cpu_cores", "ram_mb", "storage_mb", "io", "ports", "databases", "backups")
    }


def test_instantiate_creates_a_container_in_the_cluster(api: Api, tenant: Tenant) -> None:
    resp = api.admin(
        "POST",
        f"/templates/{tenant.egg['id']}/instantiate",
        {"cluster_id": tenant.cluster["id"], "name": "from-template", "resources": {"ram_mb": 96}},
    )

    assert resp.status_code == 202, resp.text
    body = resp.json
    assert body["cluster_id"] == tenant.cluster["id"]
    container, operation = body["container"], body["operation"]
    assert container["name"] == "from-template"
    assert container["egg_id"] == tenant.egg["id"]
    assert container["status"] == "provisioning"
    assert container["resources"]["ram_mb"] == 96
    assert container["resources"]["cpu_cores"] == 0.5  # the egg's default
    assert operation["kind"] == "provision" and operation["status"] == "queued"
    assert container["pending_operation"] == operation["id"]
    seen = api.tenant("GET", f"/containers/{container['id']}").json
    assert seen["name"] == "from-template"
    used = api.admin("GET", f"/clusters/{tenant.cluster['id']}").json["used"]
    assert (used["ram_mb"], used["containers"]) == (96, 1)


def test_instantiate_refusals(api: Api, tenant: Tenant) -> None:
    path = f"/templates/{tenant.egg['id']}/instantiate"
    not_allowed = api.make_egg(name="elsewhere")
    base = {"cluster_id": tenant.cluster["id"], "name": "t"}
    for template_id, body, expected in [
        (tenant.egg["id"], base | {"cluster_id": UNKNOWN_ID}, (404, "not_found")),
        (not_allowed["id"], base, (400, "egg_not_allowed")),
        (tenant.egg["id"], base | {"constraints": {"zone": "mars"}}, (409, "no_host_available")),
        (tenant.egg["id"], base | {"resources": {"ram_mb": 8}}, (400, "below_minimum")),
        (tenant.egg["id"], base | {"resources": {"ram_mb": 8192}}, (409, "capacity_exceeded")),
        (tenant.egg["id"], base | {"egg_id": tenant.egg["id"]}, (400, "invalid_input")),
        (tenant.egg["id"], {"name": "t"}, (400, "invalid_input")),
    ]:
        resp = api.admin("POST", f"/templates/{template_id}/instantiate", body)
        assert error_of(resp) == expected, (body, resp.text)
    assert api.tenant("GET", "/containers").json == []
    assert api.admin("GET", f"/clusters/{tenant.cluster['id']}").json["used"]["containers"] == 0
    assert api.admin("POST", path, base).status_code == 202


def test_instantiate_honours_label_constraints(api: Api, tenant: Tenant, deps: Deps) -> None:
    labelled = api.make_host(labels={"zone": "eu-1", "disk": "ssd"})

    resp = api.admin(
        "POST",
        f"/templates/{tenant.egg['id']}/instantiate",
        {"cluster_id": tenant.cluster["id"], "name": "t", "constraints": {"zone": "eu-1"}},
    )

    assert resp.status_code == 202, resp.text
    placed = deps.repo.workloads.get(tenant.cluster["id"], resp.json["container"]["id"])
    assert placed.host_id == labelled["id"]


def test_an_empty_egg_patch_is_invalid_input(api: Api) -> None:
    egg = api.make_egg()
    resp = api.admin("PATCH", f"/eggs/{egg['id']}", {})
    assert resp.status_code == 400 and resp.json["error"]["code"] == "invalid_input"
    unknown = api.admin("GET", "/templates/no-such-template")
    assert unknown.status_code == 404
    assert unknown.json["error"]["message"] == "Template not found."
