"""Operator API, hosts (also /nodes) and the fleet views: registering docker hosts by
unix, tcp (with TLS) and ssh addresses, drain and undrain, delete refused while a host
holds workloads, and /status, /stats, /images and /health."""

from __future__ import annotations

from typing import Any

import falcon.testing

from infra.table.repository import Repository
from services.deps import Deps
from shared.clock import utc_now
from shared.models import HostStatus
from shared.states import WorkloadStatus
from tests.fixtures.corral import Api, Tenant, error_of, make_tenant

UNKNOWN_ID = "0c7d8a4e-0000-4000-8000-000000000000"
CAPACITY = {"cpu_cores": 8, "ram_mb": 16384, "storage_mb": 102400}
PEM = "-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----\n"
PRIVATE = "-----BEGIN PRIVATE KEY-----\nsecret-material\n-----END PRIVATE KEY-----\n"


def register(api: Api, noun: str = "hosts", **fields: Any) -> falcon.testing.Result:
    body = {"name": "h", "address": "unix:///var/run/docker.sock", "capacity": CAPACITY} | fields
    return api.admin("POST", f"/{noun}", body)


def settle(deps: Deps, cluster_id: str, container_id: str, status: str) -> None:
    workload = deps.repo.workloads.get(cluster_id, container_id)
    assert workload.pending_op is not None
    operation = deps.repo.operations.get(cluster_id, workload.pending_op)
    assert deps.repo.finish_operation(
        operation, workload, status=WorkloadStatus(status), now=utc_now(), error=None
    )


def zero(**given: Any) -> dict[str, Any]:
    empty = {"cpu_cores": 0.0, "ram_mb": 0, "storage_mb": 0, "io": 0}
    return empty | {"ports": 0, "databases": 0, "backups": 0} | given


# -- register, list, get ---------------------------------------------------------------


def test_register_docker_hosts_by_unix_tcp_and_ssh_addresses(api: Api) -> None:
    unix = register(api, name="local", labels={"zone": "eu-1"}, port_range=[20000, 20999])
    tcp = register(
        api,
        "nodes",
        name="remote",
        address="tcp://10.0.0.2:2376",
        tls={"ca_cert": PEM, "client_cert": PEM, "client_key": PRIVATE},
    )
    plain_tcp = register(api, name="plain", address="tcp://10.0.0.3:2375")
    ssh = register(api, name="tunnel", address="ssh://deploy@10.0.0.4:22")

    for resp in (unix, tcp, plain_tcp, ssh):
        assert resp.status_code == 201, resp.text
        assert resp.json["driver"] == "docker"
        assert resp.json["engines"] == ["docker"]
        assert (resp.json["status"], resp.json["draining"]) == ("ready", False)
        assert resp.json["capacity"] == zero(cpu_cores=8.0, ram_mb=16384, storage_mb=102400)
        assert resp.json["used"] == zero() and resp.json["workload_count"] == 0
        assert resp.json["free"] == resp.json["capacity"]
    assert unix.json["labels"] == {"zone": "eu-1"}
    assert unix.json["port_range"] == [20000, 20999]
    assert tcp.json["address"] == "tcp://10.0.0.2:2376"
    assert ssh.json["address"] == "ssh://deploy@10.0.0.4:22"
    assert PRIVATE not in tcp.text and "secret-material" not in tcp.text
    listed = api.admin("GET", "/hosts")
    assert "secret-material" not in listed.text
    assert {h["name"] for h in listed.json} == {"local", "remote", "plain", "tunnel"}
    single = api.admin("GET", f"/hosts/{tcp.json['id']}")
    assert single.status_code == 200 and single.json["name"] == "remote"
    assert "secret-material" not in single.text


def test_register_an_ssh_host_for_vms(api: Api) -> None:
    resp = register(
        api,
        name="vm-host",
        driver="ssh",
        address="ssh://root@10.0.0.9:2222",
        ssh_host_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyNotUsedHere0000000000000000",
        ssh_private_key=PRIVATE,
    )

    assert resp.status_code == 201, resp.text
    assert (resp.json["driver"], resp.json["engines"]) == ("ssh", ["qemu"])
    assert "secret-material" not in resp.text
    assert "secret-material" not in api.admin("GET", f"/nodes/{resp.json['id']}").text


def test_register_is_validated(api: Api) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"address": "http://10.0.0.2:2375"}, "must start with"),
        ({"address": "10.0.0.2:2375"}, "must start with"),
        ({"address": "npipe:////./pipe/docker_engine"}, "must start with"),
        ({"address": ""}, "address"),
        ({"driver": "ssh", "address": "unix:///var/run/docker.sock"}, "ssh://"),
        ({"driver": "ssh", "address": "ssh://root@h:22"}, "ssh_host_key"),
        ({"driver": "kubernetes"}, "driver"),
        ({"tls": {"ca_cert": PEM}}, "tcp://"),  # tls on a unix socket
        ({"address": "tcp://h:2376", "tls": {"password": "x"}}, "tls"),
        ({"engines": ["qemu"]}, "docker hosts run docker"),
        ({"engines": []}, "engines"),
        ({"capacity": {"cpu_cores": 0, "ram_mb": 1}}, "capacity.cpu_cores"),
        ({"capacity": {"cpu_cores": 1, "ram_mb": -1}}, "capacity.ram_mb"),
        ({"capacity": {"cpu_cores": 1, "ram_mb": 10**30}}, "capacity.ram_mb"),
        ({"capacity": {"cpu_cores": 1}}, "capacity.ram_mb"),
        ({"port_range": [30000, 20000]}, "port_range"),
        ({"port_range": [80, 90]}, "port_range"),
        ({"port_range": [20000]}, "port_range"),
        ({"labels": {"zone": "a b"}}, "labels"),
    ]
    for change, words in cases:
        resp = register(api, **change)
        assert error_of(resp) == (400, "invalid_input"), change
        assert words in resp.json["error"]["message"], (change, resp.text)
    assert api.admin("GET", "/hosts").json == []


def test_hosts_and_nodes_are_one_collection(api: Api) -> None:
    first = register(api, "hosts", name="a").json
    second = register(api, "nodes", name="b").json

    assert api.admin("GET", "/hosts").json == api.admin("GET", "/nodes").json
    assert {h["id"] for h in api.admin("GET", "/nodes").json} == {first["id"], second["id"]}
    for noun in ("hosts", "nodes"):
        for host in (first, second):
            got = api.admin("GET", f"/{noun}/{host['id']}")
            assert got.status_code == 200 and got.json["name"] == host["name"]


def test_unknown_or_malformed_hosts_are_not_found(api: Api) -> None:
    for noun in ("hosts", "nodes"):
        for host_id in (UNKNOWN_ID, "x" * 81, "a%20b"):
            for method, suffix, query in [
                ("GET", "", ""),
                ("DELETE", "", ""),
                ("DELETE", "", "force=true"),
                ("POST", "/drain", ""),
                ("POST", "/undrain", ""),
            ]:
                resp = api.client.simulate_request(
                    method,
                    f"/api/v1/{noun}/{host_id}{suffix}",
                    query_string=query,
                    headers={"Authorization": f"Bearer {api.operator_key}"},
                )
                assert error_of(resp) == (404, "not_found"), (method, noun, suffix, host_id)


# -- drain ---------------------------------------------------------------------------


def test_drain_and_undrain(api: Api, tenant: Tenant) -> None:
    host_id = tenant.host["id"]
    running = tenant.create(name="before").json["container"]["id"]

    drained = api.admin("POST", f"/nodes/{host_id}/drain")

    assert drained.status_code == 200, drained.text
    assert (drained.json["status"], drained.json["draining"]) == ("draining", True)
    assert api.admin("GET", f"/hosts/{host_id}").json["status"] == "draining"
    assert api.admin("POST", f"/hosts/{host_id}/drain").json["status"] == "draining"  # again
    assert error_of(tenant.create(name="after")) == (409, "no_host_available")
    assert api.tenant("GET", f"/containers/{running}").status_code == 200  # stays put

    undrained = api.admin("POST", f"/hosts/{host_id}/undrain")

    assert undrained.status_code == 200
    assert (undrained.json["status"], undrained.json["draining"]) == ("ready", False)
    assert tenant.create(name="after").status_code == 202


def test_a_drained_host_that_is_down_stays_down_and_draining(
    api: Api, tenant: Tenant, repo: Repository
) -> None:
    host = repo.hosts.get(tenant.host["id"])
    repo.hosts.record_health(host, HostStatus.DOWN, utc_now(), heartbeat=None)

    drained = api.admin("POST", f"/hosts/{host.id}/drain").json
    assert (drained["health"], drained["draining"]) == ("down", True)

    undrained = api.admin("POST", f"/hosts/{host.id}/undrain").json
    assert (undrained["status"], undrained["draining"]) == ("down", False)


# -- delete --------------------------------------------------------------------------


def test_a_host_with_workloads_is_not_deleted_unless_forced(api: Api, tenant: Tenant) -> None:
    host_id = tenant.host["id"]
    assert tenant.create().status_code == 202

    refused = api.admin("DELETE", f"/hosts/{host_id}")

    assert error_of(refused) == (409, "host_in_use")
    assert "1 workloads" in refused.json["error"]["message"]
    assert error_of(api.admin("DELETE", f"/nodes/{host_id}?force=false")) == (409, "host_in_use")
    assert api.admin("GET", f"/hosts/{host_id}").status_code == 200
    assert error_of(api.admin("DELETE", f"/hosts/{host_id}?force=maybe")) == (
        400,
        "invalid_input",
    )

    forced = api.admin("DELETE", f"/nodes/{host_id}?force=true")

    assert forced.status_code == 204, forced.text
    assert error_of(api.admin("GET", f"/hosts/{host_id}")) == (404, "not_found")
    assert error_of(api.admin("DELETE", f"/hosts/{host_id}?force=true")) == (404, "not_found")
    assert api.admin("GET", "/hosts").json == []
    assert api.tenant("GET", "/containers").status_code == 200
    assert api.admin("GET", "/status").status_code == 200


def test_an_empty_host_is_deleted(api: Api) -> None:
    host = register(api).json

    resp = api.admin("DELETE", f"/hosts/{host['id']}")

    assert resp.status_code == 204 and resp.text == ""
    assert api.admin("GET", "/nodes").json == []


def test_a_host_emptied_by_deletes_can_be_deleted(api: Api, tenant: Tenant, deps: Deps) -> None:
    cid = tenant.create().json["container"]["id"]
    settle(deps, tenant.cluster["id"], cid, "running")
    assert api.tenant("DELETE", f"/containers/{cid}").status_code == 202
    workload = deps.repo.workloads.get(tenant.cluster["id"], cid)
    assert workload.pending_op is not None
    operation = deps.repo.operations.get(tenant.cluster["id"], workload.pending_op)
    deps.repo.finish_operation(
        operation, workload, status=WorkloadStatus.DELETED, now=utc_now(), error=None, release=True
    )

    assert api.admin("DELETE", f"/hosts/{tenant.host['id']}").status_code == 204


# -- fleet ---------------------------------------------------------------------------


def test_status_is_per_host_and_totalled(api: Api, deps: Deps) -> None:
    tenant = make_tenant(api, ram_mb=100000, containers=10)
    small = {"cpu_cores": 2, "ram_mb": 1024, "storage_mb": 10240}
    other = register(api, name="other", capacity=small).json
    first = tenant.create(name="a").json["container"]["id"]
    tenant.create(name="b")
    settle(deps, tenant.cluster["id"], first, "running")

    status = api.admin("GET", "/status").json

    by_id = {h["id"]: h for h in status["hosts"]}
    assert set(by_id) == {tenant.host["id"], other["id"]}
    # best fit puts both on the smaller host
    busy = by_id[other["id"]]
    assert busy["workloads"] == {"running": 1, "provisioning": 1}
    assert busy["used"]["ram_mb"] == 128 and busy["workload_count"] == 2
    assert busy["free"]["ram_mb"] == 1024 - 128
    assert by_id[tenant.host["id"]]["workloads"] == {}
    totals = status["totals"]
    assert totals["hosts"] == 2
    assert totals["capacity"]["ram_mb"] == 262144 + 1024
    assert totals["used"]["ram_mb"] == 128
    assert totals["free"]["ram_mb"] == 262144 + 1024 - 128
    assert totals["capacity"]["cpu_cores"] == 66.0
    assert totals["workloads"] == {"running": 1, "provisioning": 1}


def test_status_of_an_empty_fleet(api: Api) -> None:
    status = api.admin("GET", "/status").json

    assert status["hosts"] == []
    assert status["totals"] == {
        "hosts": 0,
        "capacity": zero(),
        "used": zero(),
        "free": zero(),
        "workloads": {},
    }


def test_stats_count_clusters_nodes_and_containers_by_status(api: Api, deps: Deps) -> None:
    tenant = make_tenant(api)
    suspended = api.make_cluster([tenant.egg["id"]])
    api.admin("POST", f"/clusters/{suspended['id']}/suspend")
    drained = register(api, name="drained").json
    api.admin("POST", f"/hosts/{drained['id']}/drain")
    first = tenant.create(name="a").json["container"]["id"]
    tenant.create(name="b")
    settle(deps, tenant.cluster["id"], first, "running")

    stats = api.admin("GET", "/stats").json

    assert stats["clusters"] == 2
    assert stats["clusters_by_status"] == {"active": 1, "suspended": 1}
    assert stats["nodes"] == 2
    assert stats["nodes_by_status"] == {"ready": 1, "draining": 1}
    assert stats["eggs"] == 1
    assert stats["containers"] == 2
    assert stats["containers_by_status"] == {"running": 1, "provisioning": 1}
    assert stats["running_tasks"] == 1
    assert stats["capacity"] == {"cpu_cores": 72.0, "ram_mb": 262144 + 16384}
    assert stats["load"]["hosts_measured"] == 0


def test_stats_of_an_empty_platform(api: Api) -> None:
    stats = api.admin("GET", "/stats").json

    assert {k: stats[k] for k in ("clusters", "nodes", "eggs", "containers", "running_tasks")} == {
        "clusters": 0,
        "nodes": 0,
        "eggs": 0,
        "containers": 0,
        "running_tasks": 0,
    }
    assert stats["clusters_by_status"] == stats["nodes_by_status"] == {}
    assert stats["containers_by_status"] == {}


def test_images_are_empty_until_a_health_check_records_them(api: Api, repo: Repository) -> None:
    assert api.admin("GET", "/images").json == {"images": [], "hosts": []}
    first = register(api, name="first").json
    second = register(api, name="second").json

    empty = api.admin("GET", "/images").json

    assert empty["images"] == []
    assert sorted((h["name"], h["images"], h["checked_at"]) for h in empty["hosts"]) == [
        ("first", [], None),
        ("second", [], None),
    ]

    now = utc_now()
    for host_id, images in ((first["id"], ("alpine:3", "busybox")), (second["id"], ("busybox",))):
        repo.hosts.record_health(
            repo.hosts.get(host_id), HostStatus.READY, now, heartbeat=now, images=images
        )
    seen = api.admin("GET", "/images").json

    assert seen["images"] == [
        {"image": "alpine:3", "hosts": [first["id"]]},
        {"image": "busybox", "hosts": sorted([first["id"], second["id"]])},
    ]
    by_name = {h["name"]: h for h in seen["hosts"]}
    assert by_name["first"]["images"] == ["alpine:3", "busybox"]
    assert by_name["first"]["checked_at"] is not None


def test_health_needs_no_key(api: Api) -> None:
    for headers in ({}, {"Authorization": "Bearer nonsense"}):
        resp = api.client.simulate_get("/health", headers=headers)
        assert resp.status_code == 200, resp.text
        assert resp.json["status"] == "healthy"
        assert isinstance(resp.json["version"], str) and resp.json["version"]
    assert api.client.simulate_get("/api/v1/health").status_code == 404
