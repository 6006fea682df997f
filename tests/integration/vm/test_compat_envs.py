"""003's controller requests replayed as its document writes them, on a real sshd host
in a network namespace running QEMU (TCG): register the host by `addr` (its SSH key
trusted on first use, read by a worker), create the document's example environment
verbatim (no cluster named: the platform's default cluster), see its VM answer on its
forwarded SSH port, stop, start and destroy it, with fleet status and images between.

One environment of one VM, booted once: VMs under TCG are slow, and the full life of
environments is tested in test_envs_api.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import falcon.testing
import pytest

from tests.fixtures.corral import Api, Stack, error_of, module_stack
from tests.fixtures.documents import env_003
from tests.fixtures.netns import NetnsLab, SshHost
from tests.fixtures.priority import while_serving
from tests.fixtures.vm_images import INITRD_NAME, KERNEL_NAME, VmImages
from tests.integration.vm.conftest import guest_hello, settle
from workers.hosts import check_hosts

pytestmark = pytest.mark.integration

# 003's example image name; the host holds the test disk under it.
IMAGE = "alpine-cloud"


@dataclass
class Controller:
    stack: Stack
    ssh: SshHost

    @property
    def api(self) -> Api:
        return self.stack.api

    def curl(self, method: str, path: str, body: Any = None) -> falcon.testing.Result:
        """As 003's curl: `-H "Authorization: Bearer <key>"`, JSON bodies."""
        headers = {"Authorization": f"Bearer {self.api.operator_key}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
            return self.api.client.simulate_request(
                method, path, headers=headers, body=json.dumps(body)
            )
        return self.api.client.simulate_request(method, path, headers=headers)


@pytest.fixture(scope="module")
def controller(
    table_endpoint: str, redis_url: str, netns_lab: NetnsLab, vm_images: VmImages
) -> Iterator[Controller]:
    ssh = netns_lab.add_host()
    vm_images.install_into(ssh.images_dir)
    (ssh.images_dir / IMAGE).symlink_to(vm_images.base_disk)
    with module_stack(table_endpoint, redis_url, "compat003") as stack:
        yield Controller(stack, ssh)


def test_a_host_is_registered_by_addr_trusting_its_key_on_first_use(
    controller: Controller,
) -> None:
    ssh = controller.ssh
    addr = f"{ssh.address}:{ssh.port}"
    # curl -X POST http://controller:9200/api/hosts ... -d '{"addr": "10.0.0.2:9100"}'
    bare = controller.curl("POST", "/api/hosts", {"addr": addr})
    assert error_of(bare) == (400, "invalid_input")
    assert "trust_on_first_use" in bare.json["error"]["message"]

    deps = controller.stack.deps
    unreachable = while_serving(
        deps,
        lambda: controller.curl(
            "POST",
            "/api/hosts",
            {
                "addr": f"{ssh.peer_address}:1",  # nothing listens there
                "trust_on_first_use": True,
                "ssh_private_key": ssh.client_key_pem,
                "capacity": {"cpu_cores": 4, "ram_mb": 4096},
            },
        ),
    )
    assert error_of(unreachable) == (502, "host_unreachable")

    body = {
        "addr": addr,
        "trust_on_first_use": True,
        "name": "vmhost",
        "user": ssh.username,
        "ssh_private_key": ssh.client_key_pem,
        "capacity": {"cpu_cores": 4, "ram_mb": 4096, "storage_mb": 65536},
        "labels": {
            "corral.base_dir": str(ssh.root / "compat-vms"),
            "corral.images_dir": str(ssh.images_dir),
            "corral.accel": "tcg",
        },
        "port_range": [23000, 23099],
    }
    resp = while_serving(deps, lambda: controller.curl("POST", "/api/hosts", body))
    assert resp.status_code == 201, resp.text
    host = deps.repo.hosts.get(resp.json["id"])
    assert host.ssh["host_key"] == ssh.host_key  # the key the host presented, pinned
    assert [h["id"] for h in controller.curl("GET", "/api/hosts").json] == [host.id]
    assert set(check_hosts().values()) == {"ready"}  # the pinned key lets Corral in
    assert IMAGE in deps.repo.hosts.get(host.id).images


def test_the_documents_environment_runs_on_the_default_cluster(controller: Controller) -> None:
    api = controller.api
    args = "console=ttyS0 quiet corral_listen=22,80"
    egg = api.make_egg(
        name="alpine-cloud",
        engine="qemu",
        image=IMAGE,
        command=None,
        minimum={"cpu_cores": 1, "ram_mb": 64, "storage_mb": 32},
        defaults={"cpu_cores": 1, "ram_mb": 128, "storage_mb": 64},
        stop_timeout=20,
        vm={"kernel": KERNEL_NAME, "initrd": INITRD_NAME, "kernel_args": args},
    )
    cluster = api.make_cluster(
        [egg["id"]], cpu_cores=4, ram_mb=4096, storage_mb=65536, ports=10, containers=4
    )
    settings = api.admin("PATCH", "/platform/settings", {"default_cluster_id": cluster["id"]})
    assert settings.status_code == 200, settings.text

    images = controller.curl("GET", "/api/images").json
    assert IMAGE in [i["image"] for i in images["images"]]

    # curl -X POST http://controller:9200/api/envs ... (003's example body, verbatim
    # but for the placeholder key)
    body = env_003("alpine-cloud")
    created = controller.curl("POST", "/api/envs", body)
    assert created.status_code == 202, created.text
    assert created.json["cluster_id"] == cluster["id"]
    settle(controller.stack.deps)

    env = controller.curl("GET", "/api/envs/my-env").json
    assert env["status"] == "running", env
    (vm,) = env["vms"]
    assert (vm["image"], vm["cpu"], vm["mem"], vm["disk"]) == (IMAGE, 2, 2048, 40960)
    shown = controller.curl("GET", f"/api/vms/{vm['id']}").json
    forwarded = shown["vm"]["forwarded_ports"]
    assert sorted(forwarded) == ["22", "80"]
    answer = guest_hello(controller.ssh.address, forwarded["22"], timeout=180.0)
    assert answer == b"corral-guest-hello 22\n"

    # curl -H "Authorization: Bearer <key>" http://controller:9200/api/status
    status = controller.curl("GET", "/api/status").json
    assert status["totals"]["workloads"] == {"running": 1}
    assert status["totals"]["used"]["ram_mb"] == 2048

    stopped = controller.curl("POST", "/api/envs/my-env/stop")
    assert stopped.status_code == 202, stopped.text
    settle(controller.stack.deps)
    assert controller.curl("GET", "/api/envs/my-env").json["status"] == "stopped"
    started = controller.curl("POST", "/api/envs/my-env/start")
    assert started.status_code == 202, started.text
    settle(controller.stack.deps)
    assert controller.curl("GET", "/api/envs/my-env").json["status"] == "running"

    destroyed = controller.curl("DELETE", "/api/envs/my-env")
    assert destroyed.status_code == 202, destroyed.text
    settle(controller.stack.deps)
    assert controller.curl("GET", "/api/envs").json == []
    assert controller.curl("GET", "/api/status").json["totals"]["used"]["ram_mb"] == 0
