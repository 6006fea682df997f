"""Containers people can reach, on a real dockerd: an allocation answers at the host's
public address from this (the test) process; a cluster's containers reach each other by
name on their cluster's network, and no other cluster's container reaches them.

The session's dockerd runs in a network namespace of its own with bridge networking
and iptables (devstack/dockerd.py); its `public_address` is that namespace's end of
its link. Each test takes a port range of its own, so nothing here collides with a
container another test left running."""

from __future__ import annotations

import itertools
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import docker
import pytest

from devstack.dockerd import Dockerd
from devstack.seed import HTTP_COMMAND
from services.deps import Deps
from shared.runtime import cluster_network
from tests.fixtures.corral import Api, Tenant, create_running, error_of, run_jobs
from workers import context

pytestmark = pytest.mark.integration

HTTP_TIMEOUT_S = 10.0
# A request over plain TCP from inside a container (busybox-static's wget cannot resolve).
# Each test's host gets ranges of its own: containers of earlier tests (whose tables
# are gone) may still hold their ports on the session's engine.
# Outside the default range, which the other tests' hosts draw from.
_RANGES = itertools.count(30100, 10)
PROBE = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | /bin/busybox nc -w 1 {target} {port}"


@pytest.fixture
def web(
    api: Api,
    deps: Deps,
    worker_context: context.WorkerContext,
    dockerd: Dockerd,
    docker_client: docker.DockerClient,
    busybox_image: str,
) -> Iterator[Tenant]:
    """A cluster allowed the demo `http` egg and an idle one, on the session's dockerd."""
    egg = api.make_egg(
        name="http",
        command=list(HTTP_COMMAND),
        defaults={"cpu_cores": 0.1, "ram_mb": 32, "ports": 1},
    )
    idle = api.make_egg()
    host = api.make_host(
        dockerd.url,
        public_address=dockerd.public_address,
        port_range=[(low := next(_RANGES)), low + 9],
    )
    cluster = api.make_cluster([egg["id"], idle["id"]])
    api.tenant_key = api.make_key(cluster["id"])
    yield Tenant(api, cluster, egg, host)
    # the engine outlives this test's table: take its containers (and ports) away
    for listed in api.admin("GET", "/clusters").json:
        label = f"io.corral.cluster={listed['id']}"
        for container in docker_client.containers.list(all=True, filters={"label": label}):
            container.remove(force=True, v=True)
        for network in docker_client.networks.list(names=[cluster_network(listed["id"])]):
            network.remove()


def get_page(ip: str, port: int) -> str:
    """The page at http://ip:port/, waiting (bounded) for the server to listen."""
    deadline = time.monotonic() + HTTP_TIMEOUT_S
    while True:
        try:
            with urllib.request.urlopen(f"http://{ip}:{port}/", timeout=2) as answer:
                return str(answer.read().decode())
        except urllib.error.HTTPError:
            raise  # it answered
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing answered on {ip}:{port}: {exc}") from exc
            time.sleep(0.1)


def delete(tenant: Tenant, deps: Deps, container_id: str) -> None:
    assert tenant.api.tenant("DELETE", f"/containers/{container_id}").status_code == 202
    run_jobs(deps)


def test_the_http_egg_answers_on_its_allocation(
    web: Tenant, deps: Deps, dockerd: Dockerd, docker_client: docker.DockerClient
) -> None:
    body = create_running(web, deps, name="site")
    [allocation] = body["allocations"]
    assert allocation["ip"] == dockerd.public_address
    low, high = web.host["port_range"]
    assert low <= allocation["port"] <= high
    assert allocation["container_port"] == allocation["port"] and allocation["primary"]
    page = get_page(allocation["ip"], allocation["port"])
    assert f"serves /data on port {allocation['port']}" in page
    container = docker_client.containers.get(f"corral-{body['id']}")
    env = dict(e.split("=", 1) for e in container.attrs["Config"]["Env"])
    assert env["SERVER_IP"] == dockerd.public_address
    assert env["SERVER_PORT"] == env["SERVER_PORTS"] == str(allocation["port"])
    bindings = container.attrs["HostConfig"]["PortBindings"]
    for protocol in ("tcp", "udp"):
        assert bindings[f"{allocation['port']}/{protocol}"][0]["HostPort"] == str(
            allocation["port"]
        )


def test_delete_frees_the_port_for_the_next_container(
    web: Tenant, deps: Deps, api: Api, dockerd: Dockerd
) -> None:
    only = web.host["port_range"][0]
    narrow = api.admin("PATCH", f"/hosts/{web.host['id']}", {"port_range": [only, only]})
    assert narrow.status_code == 200, narrow.text
    first = create_running(web, deps, name="first")
    assert error_of(web.create(name="second")) == (409, "no_host_available")
    delete(web, deps, first["id"])
    second = create_running(web, deps, name="second")
    assert [a["port"] for a in second["allocations"]] == [only]
    assert f"on port {only}" in get_page(dockerd.public_address, only)


def test_a_resize_of_ports_publishes_the_new_ones(
    web: Tenant, deps: Deps, docker_client: docker.DockerClient
) -> None:
    body = create_running(web, deps, name="grow")
    resp = web.api.tenant("PATCH", f"/containers/{body['id']}", {"resources": {"ports": 2}})
    assert resp.status_code == 202, resp.text
    run_jobs(deps)
    grown = web.api.tenant("GET", f"/containers/{body['id']}").json
    assert grown["status"] == "running", grown
    ports = [a["port"] for a in grown["allocations"]]
    assert ports[0] == body["allocations"][0]["port"] and len(set(ports)) == 2
    container = docker_client.containers.get(f"corral-{body['id']}")
    published = {int(k.split("/")[0]) for k in container.attrs["HostConfig"]["PortBindings"]}
    assert published == set(ports)
    env = dict(e.split("=", 1) for e in container.attrs["Config"]["Env"])
    assert env["SERVER_PORTS"] == ",".join(str(p) for p in ports)
    assert f"on port {ports[0]}" in get_page(grown["allocations"][0]["ip"], ports[0])


def test_fixed_container_ports_are_mapped_to_allocations(
    api: Api, web: Tenant, deps: Deps, dockerd: Dockerd
) -> None:
    fixed = api.make_egg(
        name="fixed",
        command=["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/etc"],
        container_ports=[8080],
        defaults={"cpu_cores": 0.1, "ram_mb": 32, "ports": 1},
    )
    allowed = web.cluster["egg_ids"] + [fixed["id"]]
    resp = api.admin("PATCH", f"/clusters/{web.cluster['id']}", {"egg_ids": allowed})
    assert resp.status_code == 200, resp.text
    body = create_running(web, deps, name="fixed", egg_id=fixed["id"])
    [allocation] = body["allocations"]
    assert allocation["container_port"] == 8080 and allocation["port"] != 8080
    try:
        get_page(dockerd.public_address, allocation["port"])
    except urllib.error.HTTPError as exc:  # httpd of /etc has no index: it answered
        assert exc.code == 404


def probe(client: docker.DockerClient, container_id: str, target: str, port: int) -> str:
    container = client.containers.get(f"corral-{container_id}")
    command = ["/bin/sh", "-c", PROBE.format(target=target, port=port)]
    output = container.exec_run(command).output
    assert isinstance(output, bytes)
    return output.decode(errors="replace")


def test_clusters_are_cut_off_from_each_other(
    api: Api, web: Tenant, deps: Deps, docker_client: docker.DockerClient
) -> None:
    site = create_running(web, deps, name="site")
    port = site["allocations"][0]["port"]
    idle = next(e["id"] for e in api.admin("GET", "/eggs").json if e["name"] == "busybox")
    neighbour = create_running(web, deps, name="neighbour", egg_id=idle, ports=0)
    first_key = api.tenant_key
    other = api.make_cluster(web.cluster["egg_ids"])
    api.tenant_key = api.make_key(other["id"])
    stranger = create_running(web, deps, name="stranger", egg_id=idle, ports=0)
    api.tenant_key = first_key

    network = docker_client.networks.get(cluster_network(web.cluster["id"]))
    site_ip = network.attrs["Containers"][docker_client.containers.get(f"corral-{site['id']}").id][
        "IPv4Address"
    ].split("/")[0]
    # one cluster's containers reach each other, by name and by address
    assert "HTTP/1." in probe(docker_client, neighbour["id"], "site", port)
    assert "HTTP/1." in probe(docker_client, neighbour["id"], site_ip, port)
    # another cluster's cannot, by either
    assert "HTTP/1." not in probe(docker_client, stranger["id"], site_ip, port)
    assert "HTTP/1." not in probe(docker_client, stranger["id"], "site", port)

    delete(web, deps, site["id"])
    assert docker_client.networks.list(names=[cluster_network(web.cluster["id"])])
    delete(web, deps, neighbour["id"])  # the cluster's last container on the host
    gone = docker_client.networks.list(names=[cluster_network(web.cluster["id"])])
    assert [n.name for n in gone] == []
