"""The reference documents' own requests against the app on real Redis and DynamoDB Local,
for what needs no engine: 001's clusters, nodes, health and platform config; 003's
/api paths (host registration by address, envs to the default cluster, unknown images);
002's instances up to the engine (create, read, list, delete). The engines' side runs in
tests/integration/test_compat_instances.py (002 on dockerd) and
tests/integration/vm/test_compat_envs.py (003 on QEMU)."""

from __future__ import annotations

from typing import Any

import falcon.testing
import pytest

from shared.settings import VERSION
from tests.fixtures.corral import Api, Tenant, error_of
from tests.fixtures.documents import env_003

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyNotUsedHere0000000000000000"
PRIVATE = "-----BEGIN OPENSSH PRIVATE KEY-----\nsecret-material\n"


def operator(api: Api) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.operator_key}"}


def tenant_header(api: Api) -> dict[str, str]:
    assert api.tenant_key is not None
    return {"X-API-Key": api.tenant_key}


# -- 001 -------------------------------------------------------------------------------


def test_001_health_is_the_documented_object_plus_checks(api: Api) -> None:
    # curl http://localhost:47080/health  ->  {"status":"healthy","version":"0.1.0"}
    resp = api.client.simulate_get("/health")
    assert resp.status_code == 200
    assert {k: resp.json[k] for k in ("status", "version")} == {
        "status": "healthy",
        "version": VERSION,
    }
    assert set(resp.json) == {"status", "version", "checks"}


def test_001_platform_config_is_public(api: Api) -> None:
    resp = api.client.simulate_get("/api/v1/platform/config")
    assert resp.status_code == 200, resp.text
    assert resp.json["version"] == VERSION
    assert isinstance(resp.json["features"]["token_login"], bool)
    assert resp.json["api"]["public"] == "/api/public/clusters/v1"
    assert resp.json["api"]["admin"] == "/api/v1"
    assert resp.json["api"]["instances"] == "/api/instances"


def test_001_clusters_and_nodes_in_its_shapes(api: Api, tenant: Tenant) -> None:
    created = tenant.create()
    assert created.status_code == 202
    # curl http://localhost:47080/api/v1/clusters (with the operator key Corral asks for)
    listed = api.client.simulate_get("/api/v1/clusters", headers=operator(api))
    assert listed.status_code == 200
    (cluster,) = listed.json
    for field in ("id", "name", "type", "description", "config", "node_count", "running_tasks"):
        assert field in cluster, field
    assert cluster["type"] in ("managed", "self_managed", "local")
    assert (cluster["node_count"], cluster["running_tasks"]) == (1, 0)  # provisioning
    one = api.client.simulate_get(f"/api/v1/clusters/{cluster['id']}", headers=operator(api))
    assert one.json == cluster

    nodes = api.client.simulate_get("/api/v1/nodes", headers=operator(api))
    (node,) = nodes.json
    assert node["status"] in ("ready", "not_ready", "draining", "down")
    # curl -X POST http://localhost:47080/api/v1/nodes/$NODE_ID/drain
    drained = api.client.simulate_post(f"/api/v1/nodes/{node['id']}/drain", headers=operator(api))
    assert drained.status_code == 200
    assert drained.json["status"] == "draining"


def test_001_cluster_type_description_and_config_are_kept(api: Api) -> None:
    egg = api.make_egg()
    body = {
        "name": "main",
        "type": "local",
        "description": "the laptop",
        "plan": {"ram_mb": 1024, "containers": 2},
        "egg_ids": [egg["id"]],
        "config": {"default_egg_id": egg["id"]},
    }
    resp = api.admin("POST", "/clusters", body)
    assert resp.status_code == 201, resp.text
    assert (resp.json["type"], resp.json["description"]) == ("local", "the laptop")
    assert resp.json["config"] == {"default_egg_id": egg["id"]}
    path = f"/clusters/{resp.json['id']}"

    changed = api.admin("PATCH", path, {"type": "self_managed", "description": "moved"})
    assert (changed.json["type"], changed.json["description"]) == ("self_managed", "moved")
    assert changed.json["config"] == {"default_egg_id": egg["id"]}
    cleared = api.admin("PATCH", path, {"config": {}})
    assert cleared.json["config"] == {"default_egg_id": None}


@pytest.mark.parametrize(
    "change",
    [{"type": "cloud"}, {"config": {"default_egg_id": "not-allowed"}}, {"config": {"x": 1}}],
)
def test_001_bad_cluster_fields_are_400(api: Api, tenant: Tenant, change: dict[str, Any]) -> None:
    path = f"/clusters/{tenant.cluster['id']}"
    before = api.admin("GET", path).json
    assert error_of(api.admin("PATCH", path, change)) == (400, "invalid_input")
    assert api.admin("GET", path).json == before


def test_default_egg_must_stay_allowed(api: Api, tenant: Tenant) -> None:
    path = f"/clusters/{tenant.cluster['id']}"
    ok = api.admin("PATCH", path, {"config": {"default_egg_id": tenant.egg["id"]}})
    assert ok.status_code == 200, ok.text
    assert error_of(api.admin("PATCH", path, {"egg_ids": []})) == (400, "invalid_input")


# -- platform settings -----------------------------------------------------------------


def test_platform_settings_name_an_existing_cluster(api: Api, tenant: Tenant) -> None:
    assert api.admin("GET", "/platform/settings").json["default_cluster_id"] is None
    missing = api.admin("PATCH", "/platform/settings", {"default_cluster_id": "nope"})
    assert error_of(missing) == (404, "not_found")
    assert error_of(api.admin("PATCH", "/platform/settings", {})) == (400, "invalid_input")

    cluster_id = tenant.cluster["id"]
    resp = api.admin("PATCH", "/platform/settings", {"default_cluster_id": cluster_id})
    assert resp.status_code == 200, resp.text
    assert api.admin("GET", "/platform/settings").json["default_cluster_id"] == cluster_id
    unset = api.admin("PATCH", "/platform/settings", {"default_cluster_id": None})
    assert unset.json["default_cluster_id"] is None
    refused = api.tenant("GET", "/cluster")  # still a tenant; the settings are not theirs
    assert refused.status_code == 200
    as_tenant = api.client.simulate_get(
        "/api/v1/platform/settings", headers={"Authorization": f"Bearer {api.tenant_key}"}
    )
    assert error_of(as_tenant) == (401, "unauthorized")


# -- 003 -------------------------------------------------------------------------------


def post_003(api: Api, path: str, body: Any, **kw: Any) -> falcon.testing.Result:
    """As 003's curl: -H "Authorization: Bearer <key>" -H "Content-Type: application/json"."""
    return api.client.simulate_post(
        path, headers=operator(api) | {"Content-Type": "application/json"}, json=body, **kw
    )


def test_003_host_by_addr_alone_names_what_is_missing(api: Api) -> None:
    # curl -X POST http://controller:9200/api/hosts ... -d '{"addr": "10.0.0.2:9100"}'
    resp = post_003(api, "/api/hosts", {"addr": "10.0.0.2:9100"})
    assert error_of(resp) == (400, "invalid_input")
    message = resp.json["error"]["message"]
    for field in ("ssh_private_key", "capacity", "ssh_host_key", "trust_on_first_use"):
        assert field in message, field
    assert {d["loc"] for d in resp.json["error"]["details"]} == {
        "body.ssh_private_key",
        "body.capacity",
        "body.ssh_host_key",
    }
    assert api.client.simulate_get("/api/hosts", headers=operator(api)).json == []


def test_003_host_with_its_key_given_is_registered_by_addr(api: Api) -> None:
    body = {
        "addr": "10.0.0.2:9100",
        "ssh_private_key": PRIVATE,
        "ssh_host_key": HOST_KEY,
        "capacity": {"cpu_cores": 4, "ram_mb": 4096},
    }
    resp = post_003(api, "/api/hosts", body)
    assert resp.status_code == 201, resp.text
    assert resp.json["address"] == "ssh://root@10.0.0.2:9100"
    assert (resp.json["driver"], resp.json["engines"]) == ("ssh", ["qemu"])
    assert "secret-material" not in resp.text
    host_id = resp.json["id"]
    got = api.client.simulate_get(f"/api/hosts/{host_id}", headers=operator(api))
    assert got.json["id"] == host_id
    assert [h["id"] for h in api.client.simulate_get("/api/hosts", headers=operator(api)).json] == [
        host_id
    ]
    gone = api.client.simulate_delete(f"/api/hosts/{host_id}", headers=operator(api))
    assert gone.status_code == 204


@pytest.mark.parametrize("addr", ["10.0.0.2:99999", "a b:22", "ssh://10.0.0.2:22", ""])
def test_003_bad_addrs_are_400(api: Api, addr: str) -> None:
    body: dict[str, Any] = {"addr": addr, "ssh_private_key": PRIVATE, "ssh_host_key": HOST_KEY}
    body["capacity"] = {"cpu_cores": 1, "ram_mb": 1}
    assert error_of(post_003(api, "/api/hosts", body)) == (400, "invalid_input")


def test_003_routes_take_only_an_operator_key(api: Api, tenant: Tenant) -> None:
    tenant_bearer = {"Authorization": f"Bearer {api.tenant_key}"}
    for method, path in (
        ("GET", "/api/hosts"),
        ("POST", "/api/hosts"),
        ("GET", "/api/envs"),
        ("POST", "/api/envs"),
        ("GET", "/api/status"),
        ("GET", "/api/images"),
        ("GET", "/api/vms/x"),
    ):
        for headers in ({}, tenant_bearer):
            resp = api.client.simulate_request(method, path, headers=headers, json={})
            assert error_of(resp) == (401, "unauthorized"), (method, path, headers)


def vm_lab(api: Api) -> dict[str, Any]:
    egg = api.make_egg(
        name="alpine",
        engine="qemu",
        image="alpine-cloud.qcow2",
        command=None,
        minimum={"cpu_cores": 1, "ram_mb": 64, "storage_mb": 64},
        defaults={"cpu_cores": 1, "ram_mb": 128, "storage_mb": 1024},
    )
    host = api.make_host(
        name="vm-a",
        driver="ssh",
        address="ssh://root@vm-a.invalid:22",
        capacity={"cpu_cores": 8, "ram_mb": 8192, "storage_mb": 100000},
        ssh_host_key=HOST_KEY,
        ssh_private_key=PRIVATE,
    )
    cluster = api.make_cluster([egg["id"]], cpu_cores=8, ram_mb=8192, storage_mb=100000)
    return {"egg": egg, "host": host, "cluster": cluster}


def test_003_env_without_cluster_id_needs_a_default_cluster(api: Api) -> None:
    lab = vm_lab(api)
    refused = post_003(api, "/api/envs", env_003("alpine-cloud.qcow2"))
    assert error_of(refused) == (400, "invalid_input")
    assert "default_cluster_id" in refused.json["error"]["message"]

    api.admin("PATCH", "/platform/settings", {"default_cluster_id": lab["cluster"]["id"]})
    resp = post_003(api, "/api/envs", env_003("alpine-cloud.qcow2"))
    assert resp.status_code == 202, resp.text
    assert resp.json["cluster_id"] == lab["cluster"]["id"]
    (vm,) = resp.json["vms"]
    assert (vm["cpu"], vm["mem"], vm["disk"]) == (2, 2048, 40960)
    got = api.client.simulate_get("/api/envs/my-env", headers=operator(api))
    assert got.json["id"] == "my-env"
    listed = api.client.simulate_get("/api/envs", headers=operator(api))
    assert [e["id"] for e in listed.json] == ["my-env"]
    one = api.client.simulate_get(f"/api/vms/{vm['id']}", headers=operator(api))
    assert one.json["env_id"] == "my-env"
    status = api.client.simulate_get("/api/status", headers=operator(api))
    assert status.json["totals"]["workloads"] == {"provisioning": 1}
    images = api.client.simulate_get("/api/images", headers=operator(api))
    assert images.status_code == 200 and "images" in images.json


def test_003_unknown_image_lists_the_available_ones(api: Api) -> None:
    lab = vm_lab(api)
    api.admin("PATCH", "/platform/settings", {"default_cluster_id": lab["cluster"]["id"]})

    resp = post_003(api, "/api/envs", env_003("alpine-cloud"))

    assert resp.status_code == 400
    assert "alpine-cloud.qcow2" in resp.json["error"]["message"]
    assert api.client.simulate_get("/api/envs", headers=operator(api)).json == []


# -- 002 (what needs no engine) --------------------------------------------------------


def test_002_create_needs_the_clusters_default_egg(tenant: Tenant) -> None:
    api = tenant.api
    resp = api.client.simulate_post(
        "/api/instances",
        headers=tenant_header(api) | {"Content-Type": "application/json"},
        body='{"name": "my-bot", "region": "us-east-1"}',
    )
    assert error_of(resp) == (400, "invalid_input")
    assert "default_egg_id" in resp.json["error"]["message"]


def test_002_instances_as_the_document_shows_them(tenant: Tenant) -> None:
    api = tenant.api
    api.admin(
        "PATCH",
        f"/clusters/{tenant.cluster['id']}",
        {"config": {"default_egg_id": tenant.egg["id"]}},
    )
    elsewhere = api.make_host(name="eu", labels={"region": "eu-west-1"})
    us = api.make_host(name="us", labels={"region": "us-east-1"})

    # curl -X POST http://localhost:3000/api/instances -H "X-API-Key: your-key"
    #   -H "Content-Type: application/json" -d '{"name": "my-bot", "region": "us-east-1"}'
    resp = api.client.simulate_post(
        "/api/instances",
        headers=tenant_header(api) | {"Content-Type": "application/json"},
        body='{"name": "my-bot", "region": "us-east-1"}',
    )
    assert resp.status_code == 201, resp.text
    created = resp.json
    assert set(created) == {"id", "name", "status", "region", "created_at", "updated_at", "health"}
    assert (created["name"], created["status"], created["region"]) == (
        "my-bot",
        "creating",
        "us-east-1",
    )
    assert isinstance(created["created_at"], int) and isinstance(created["updated_at"], int)
    for field in ("cpu_percent", "memory_mb", "disk_mb", "last_heartbeat", "uptime_secs"):
        assert field in created["health"]
    container = api.tenant("GET", f"/containers/{created['id']}").json
    assert container["egg_id"] == tenant.egg["id"]
    operator_view = api.admin("GET", f"/clusters/{tenant.cluster['id']}/containers/{created['id']}")
    assert operator_view.json["host_id"] == us["id"] != elsewhere["id"]

    # curl http://localhost:3000/api/instances -H "X-API-Key: your-key"
    listed = api.client.simulate_get("/api/instances", headers=tenant_header(api))
    assert listed.json == [created]
    got = api.client.simulate_get(f"/api/instances/{created['id']}", headers=tenant_header(api))
    assert got.json == created
    health = api.client.simulate_get(
        f"/api/instances/{created['id']}/health", headers=tenant_header(api)
    )
    assert health.json == created["health"]

    # an empty body is 002's too: both fields are optional
    bare = api.client.simulate_post("/api/instances", headers=tenant_header(api))
    assert bare.status_code == 201, bare.text
    assert bare.json["name"].startswith("instance-")


def test_002_unknown_region_and_ids_are_clear_errors(tenant: Tenant) -> None:
    api = tenant.api
    api.admin(
        "PATCH",
        f"/clusters/{tenant.cluster['id']}",
        {"config": {"default_egg_id": tenant.egg["id"]}},
    )
    far = api.client.simulate_post(
        "/api/instances", headers=tenant_header(api), json={"name": "x", "region": "mars-1"}
    )
    assert error_of(far) == (409, "no_host_available")
    bad = api.client.simulate_post(
        "/api/instances", headers=tenant_header(api), json={"name": "x", "size": "big"}
    )
    assert error_of(bad) == (400, "invalid_input")
    for path in ("/api/instances/inst_abc123", "/api/instances/inst_abc123/health"):
        assert error_of(api.client.simulate_get(path, headers=tenant_header(api))) == (
            404,
            "not_found",
        )
    pause = api.client.simulate_post("/api/instances/inst_abc123/pause", headers=tenant_header(api))
    assert error_of(pause) == (404, "not_found")
    as_operator = api.client.simulate_get("/api/instances", headers=operator(api))
    assert error_of(as_operator) == (401, "unauthorized")
