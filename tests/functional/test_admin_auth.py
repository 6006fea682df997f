"""Every operator route, read from the app's own router, refuses a tenant key, a
missing key and a revoked operator key with 401 and changes nothing; every tenant
route refuses an operator key."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import falcon
import falcon.testing
import pytest

from handlers import routing
from handlers.app import ADMIN_BASE, PUBLIC_BASE, create_app
from handlers.auth import OPERATOR, Authenticator
from infra.table.api_keys import ApiKeyStore
from infra.table.clusters import ClusterStore
from infra.table.dynamo import Dynamo
from infra.table.repository import Repository
from services.deps import Deps
from services.keys import mint_key
from shared.clock import new_id, utc_now
from shared.keys import hash_secret
from shared.models import ApiKey, Cluster
from tests.fixtures.corral import Api, Tenant, error_of
from tests.fixtures.openapi_check import CheckedClient

ENV_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq0Cw9bmL6J8fM3p4rWn2M7Q0dD4xP6y1vU8n9s2kLr a@b"
# Routes the walk must find: a route silently dropped from the router fails here.
EXPECTED_OPERATOR_ROUTES = {
    ("GET", "/events"),
    ("GET", "/webhooks"),
    ("POST", "/webhooks"),
    ("GET", "/webhooks/{webhook_id}"),
    ("DELETE", "/webhooks/{webhook_id}"),
    ("GET", "/webhooks/{webhook_id}/deliveries"),
    ("GET", "/clusters"),
    ("POST", "/clusters"),
    ("GET", "/clusters/{cluster_id}"),
    ("PATCH", "/clusters/{cluster_id}"),
    ("POST", "/clusters/{cluster_id}/suspend"),
    ("POST", "/clusters/{cluster_id}/reactivate"),
    ("POST", "/clusters/{cluster_id}/expire"),
    ("GET", "/clusters/{cluster_id}/keys"),
    ("POST", "/clusters/{cluster_id}/keys"),
    ("GET", "/clusters/{cluster_id}/keys/{key_id}"),
    ("DELETE", "/clusters/{cluster_id}/keys/{key_id}"),
    ("GET", "/eggs"),
    ("POST", "/eggs"),
    ("GET", "/eggs/{egg_id}"),
    ("PATCH", "/eggs/{egg_id}"),
    ("DELETE", "/eggs/{egg_id}"),
    ("GET", "/templates"),
    ("GET", "/templates/{template_id}"),
    ("POST", "/templates/{template_id}/instantiate"),
    *(
        route
        for noun in ("hosts", "nodes")
        for route in (
            ("GET", f"/{noun}"),
            ("POST", f"/{noun}"),
            ("GET", f"/{noun}/{{host_id}}"),
            ("PATCH", f"/{noun}/{{host_id}}"),
            ("DELETE", f"/{noun}/{{host_id}}"),
            ("POST", f"/{noun}/{{host_id}}/drain"),
            ("POST", f"/{noun}/{{host_id}}/undrain"),
        )
    ),
    ("GET", "/status"),
    ("GET", "/stats"),
    ("GET", "/images"),
    ("GET", "/operations"),
    ("GET", "/envs"),
    ("POST", "/envs"),
    ("GET", "/envs/{env_id}"),
    ("DELETE", "/envs/{env_id}"),
    ("POST", "/envs/{env_id}/stop"),
    ("POST", "/envs/{env_id}/start"),
    ("POST", "/envs/{env_id}/lease"),
    ("GET", "/vms/{vm_id}"),
    ("GET", "/platform/settings"),
    ("PATCH", "/platform/settings"),
    ("GET", "/database-hosts"),
    ("POST", "/database-hosts"),
    ("GET", "/database-hosts/{host_id}"),
    ("PATCH", "/database-hosts/{host_id}"),
    ("DELETE", "/database-hosts/{host_id}"),
    ("GET", "/managed-databases"),
    ("POST", "/managed-databases"),
    ("GET", "/managed-databases/{database_id}"),
    ("DELETE", "/managed-databases/{database_id}"),
    ("POST", "/managed-databases/{database_id}/bind"),
    ("DELETE", "/managed-databases/{database_id}/bind"),
}


def routes(
    app: falcon.App[falcon.Request, falcon.Response], scope: str | None = None
) -> Iterator[tuple[str, str]]:
    """(method, uri template) for every responder the app's router holds (of resources
    that take `scope`'s keys, when given)."""
    for template, resource in routing.routes(app):
        if scope is not None and getattr(resource, "auth", OPERATOR) != scope:
            continue
        for method in falcon.COMBINED_METHODS:
            if method != "OPTIONS" and hasattr(resource, f"on_{method.lower()}"):
                yield method, template


def operator_routes(app: falcon.App[falcon.Request, falcon.Response]) -> set[tuple[str, str]]:
    return {
        (method, template[len(ADMIN_BASE) :])
        for method, template in routes(app, OPERATOR)
        if template.startswith(ADMIN_BASE + "/")
    }


@pytest.fixture
def world(api: Api, tenant: Tenant, deps: Deps) -> dict[str, Any]:
    """Real ids for every path parameter, so that a route that forgot its key check
    would act (and the checks below would see it)."""
    created = tenant.create().json
    key = api.admin("GET", f"/clusters/{tenant.cluster['id']}/keys").json[0]
    return {
        "ids": {
            "cluster_id": tenant.cluster["id"],
            "key_id": key["id"],
            "egg_id": tenant.egg["id"],
            "template_id": tenant.egg["id"],
            "host_id": tenant.host["id"],
            "env_id": "env-1",
            "vm_id": created["container"]["id"],
            "container_id": created["container"]["id"],
            "operation_id": created["operation"]["id"],
            "database_id": "db-1",
            "backup_id": new_id(),  # a route that skipped its key check would answer 404
            "webhook_id": new_id(),
        },
        "tenant": tenant,
    }


def operator_bodies(ids: dict[str, str]) -> dict[tuple[str, str], Any]:
    """Bodies that the operator key would have accepted."""
    host = {
        "name": "h2",
        "address": "unix:///run/d.sock",
        "capacity": {"cpu_cores": 1, "ram_mb": 1},
    }
    return {
        ("POST", "/clusters"): {"name": "x", "plan": {"ram_mb": 1}},
        ("PATCH", "/clusters/{cluster_id}"): {"name": "stolen"},
        ("POST", "/clusters/{cluster_id}/keys"): {"name": "mine"},
        ("POST", "/eggs"): {
            "name": "x",
            "image": "busybox",
            "minimum": {"cpu_cores": 0.1, "ram_mb": 16},
        },
        ("PATCH", "/eggs/{egg_id}"): {"image": "evil:latest"},
        ("POST", "/templates/{template_id}/instantiate"): {
            "cluster_id": ids["cluster_id"],
            "name": "sneaky",
        },
        ("POST", "/hosts"): host,
        ("POST", "/nodes"): host,
        ("PATCH", "/hosts/{host_id}"): {"port_range": [30000, 30999]},
        ("PATCH", "/nodes/{host_id}"): {"public_address": "203.0.113.7"},
        ("POST", "/images/pull"): {"image": "busybox", "host_ids": [ids["host_id"]]},
        ("DELETE", "/images"): {"image": "busybox", "host_id": ids["host_id"]},
        ("PATCH", "/platform/settings"): {"default_cluster_id": ids["cluster_id"]},
        ("POST", "/envs"): {
            "id": "env-2",
            "cluster_id": ids["cluster_id"],
            "ssh_keys": [ENV_KEY],
            "vms": [{"image": "base.qcow2"}],
        },
        ("POST", "/database-hosts"): {
            "name": "pg",
            "engine": "postgres",
            "host": "db.internal",
            "port": 5432,
            "username": "corral",
            "password": "admin-password",
        },
        ("PATCH", "/database-hosts/{host_id}"): {"max_databases": 1},
        ("POST", "/managed-databases"): {"cluster_id": ids["cluster_id"], "name": "db"},
        ("POST", "/managed-databases/{database_id}/bind"): {"app_id": ids["container_id"]},
        ("POST", "/webhooks"): {"url": "https://203.0.113.9/hook"},  # an IP: no DNS
    }


def snapshot(api: Api, cluster_id: str) -> dict[str, Any]:
    """What the operator sees; compared before and after the refused calls."""
    containers = api.tenant("GET", "/containers").json  # first: it marks the key used
    return {"containers": containers} | {
        path: api.admin("GET", path).json
        for path in (
            "/clusters",
            f"/clusters/{cluster_id}/keys",
            "/eggs",
            "/hosts",
            "/envs",
            "/database-hosts",
            "/managed-databases",
        )
    }


def call_every_operator_route(api: Api, ids: dict[str, str], headers: dict[str, str]) -> None:
    bodies = operator_bodies(ids)
    for method, template in sorted(operator_routes(api.client.app)):
        path = ADMIN_BASE + template.format(**ids)
        kw: dict[str, Any] = {"headers": headers}
        if method == "DELETE":
            kw["query_string"] = "force=true"
        if (method, template) in bodies:
            kw["json"] = bodies[(method, template)]
        resp = api.client.simulate_request(method, path, **kw)
        assert error_of(resp) == (401, "unauthorized"), (method, template, headers)


def test_the_router_holds_every_documented_operator_route(api: Api) -> None:
    found = operator_routes(api.client.app)

    assert found >= EXPECTED_OPERATOR_ROUTES, EXPECTED_OPERATOR_ROUTES - found
    outside = {t for _, t in routes(api.client.app) if not t.startswith(("/api/", "/health"))}
    # The API's own reference (handlers/reference.py) and the dashboard's files
    # (handlers/web.py), public by design.
    assert outside == {"/openapi.json", "/docs", "/docs/{name}", "/", "/web/{name}"}


def test_every_operator_route_refuses_a_tenant_key(api: Api, world: dict[str, Any]) -> None:
    ids = world["ids"]
    before = snapshot(api, ids["cluster_id"])

    call_every_operator_route(api, ids, {"Authorization": f"Bearer {api.tenant_key}"})

    assert snapshot(api, ids["cluster_id"]) == before
    assert api.tenant("GET", "/cluster").status_code == 200  # the tenant key still works


def test_every_operator_route_refuses_a_missing_or_invalid_key(
    api: Api, world: dict[str, Any]
) -> None:
    ids = world["ids"]
    before = snapshot(api, ids["cluster_id"])
    operator = api.operator_key
    for header in (
        None,
        "",
        "Bearer",
        "Basic b3BlcmF0b3I6cGFzcw==",
        operator,  # without the scheme
        f"Token {operator}",
        f"Bearer {operator}x",
        f"Bearer {operator[:-1]}",
        "Bearer " + "x" * 201,
    ):
        headers = {} if header is None else {"Authorization": header}
        call_every_operator_route(api, ids, headers)

    assert snapshot(api, ids["cluster_id"]) == before


def test_every_operator_route_refuses_a_revoked_operator_key(
    api: Api, world: dict[str, Any], deps: Deps
) -> None:
    ids = world["ids"]
    key, secret = mint_key(deps.repo, None, "second-operator", utc_now(), new_id)
    as_second = Api(api.client, secret, api.tenant_key)
    assert as_second.admin("GET", "/clusters").status_code == 200  # cached now
    before = snapshot(api, ids["cluster_id"])

    deps.repo.revoke_key(key, utc_now())
    Authenticator(deps).forget([hash_secret(secret)])

    call_every_operator_route(api, ids, {"Authorization": f"Bearer {secret}"})
    assert snapshot(api, ids["cluster_id"]) == before
    assert api.admin("GET", "/clusters").status_code == 200  # the first operator key works


def test_every_tenant_route_refuses_an_operator_key(api: Api, world: dict[str, Any]) -> None:
    ids = world["ids"]
    bodies = {
        ("POST", "/containers"): {"name": "x", "egg_id": ids["egg_id"]},
        ("PATCH", "/containers/{container_id}"): {"name": "renamed"},
        ("POST", "/containers/{container_id}/power"): {"signal": "stop"},
        ("POST", "/containers/{container_id}/lease"): {"lifetime": 60},
    }
    tenant_routes = sorted(
        (method, template[len(PUBLIC_BASE) :])
        for method, template in routes(api.client.app)
        if template.startswith(PUBLIC_BASE + "/")
    )
    assert len(tenant_routes) >= 13, tenant_routes
    before = api.tenant("GET", "/containers").json
    headers = {"Authorization": f"Bearer {api.operator_key}"}

    for method, template in tenant_routes:
        kw: dict[str, Any] = {"headers": headers}
        if (method, template) in bodies:
            kw["json"] = bodies[(method, template)]
        resp = api.client.simulate_request(method, PUBLIC_BASE + template.format(**ids), **kw)
        assert error_of(resp) == (401, "unauthorized"), (method, template)

    assert api.tenant("GET", "/containers").json == before


def acting_order(route: tuple[str, str]) -> tuple[int, str]:
    """Reads, then changes, then deletes; reactivate after suspend and expire."""
    method, template = route
    return ["GET", "PATCH", "POST", "DELETE"].index(method), template.replace("reactivate", "~")


def test_the_same_calls_with_the_operator_key_succeed(api: Api, world: dict[str, Any]) -> None:
    """The refusals above are the key's doing: with the operator key the same ids and
    bodies get through, and never a 500."""
    ids = world["ids"]
    bodies = operator_bodies(ids)
    failed = {}
    for method, template in sorted(operator_routes(api.client.app), key=acting_order):
        kw: dict[str, Any] = {"headers": {"Authorization": f"Bearer {api.operator_key}"}}
        if method == "DELETE":
            kw["query_string"] = "force=true"
        if (method, template) in bodies:
            kw["json"] = bodies[(method, template)]
        resp = api.client.simulate_request(method, ADMIN_BASE + template.format(**ids), **kw)
        assert resp.status_code < 500, (method, template, resp.text)
        if resp.status_code >= 300:
            failed[(method, template)] = error_of(resp)

    # No qemu egg, VM host or env exists here; the docker egg is allowed in the
    # cluster; the host was deleted through /hosts before /nodes and /images; and a
    # workload's operation is read under its cluster, not among the fleet's.
    assert failed == {
        ("GET", "/operations/{operation_id}"): (404, "not_found"),
        ("DELETE", "/images"): (404, "not_found"),
        ("GET", "/envs/{env_id}"): (404, "not_found"),
        ("POST", "/envs"): (400, "egg_not_allowed"),
        ("POST", "/envs/{env_id}/start"): (404, "not_found"),
        ("POST", "/envs/{env_id}/stop"): (404, "not_found"),
        ("POST", "/envs/{env_id}/lease"): (404, "not_found"),
        ("DELETE", "/envs/{env_id}"): (404, "not_found"),
        ("GET", "/vms/{vm_id}"): (404, "not_found"),
        ("DELETE", "/eggs/{egg_id}"): (409, "conflict"),
        ("DELETE", "/nodes/{host_id}"): (404, "not_found"),
        # the database routes, given the docker host's id and a database id that is not
        ("GET", "/database-hosts/{host_id}"): (404, "not_found"),
        ("PATCH", "/database-hosts/{host_id}"): (404, "not_found"),
        ("DELETE", "/database-hosts/{host_id}"): (404, "not_found"),
        ("GET", "/managed-databases/{database_id}"): (404, "not_found"),
        ("DELETE", "/managed-databases/{database_id}"): (404, "not_found"),
        ("POST", "/managed-databases/{database_id}/bind"): (404, "not_found"),
        ("DELETE", "/managed-databases/{database_id}/bind"): (404, "not_found"),
        # a webhook id that is not one
        ("GET", "/webhooks/{webhook_id}"): (404, "not_found"),
        ("GET", "/webhooks/{webhook_id}/deliveries"): (404, "not_found"),
        ("DELETE", "/webhooks/{webhook_id}"): (404, "not_found"),
    }


# -- a revocation or suspension racing a request that is loading the same key ---------


class Pause:
    """One pause after the first read of `method` (`find_key` or `get_cluster`): the
    operator acts while a tenant request is between reading its key and caching the
    principal."""

    def __init__(self, method: str, meanwhile: Callable[[], None]) -> None:
        self._method = method
        self._meanwhile: Callable[[], None] | None = meanwhile

    def after(self, method: str) -> None:
        if method == self._method and self._meanwhile is not None:
            meanwhile, self._meanwhile = self._meanwhile, None
            meanwhile()


class PausingKeys(ApiKeyStore):
    def __init__(self, db: Dynamo, pause: Pause) -> None:
        super().__init__(db)
        self._pause = pause

    def find(self, key_hash: str) -> ApiKey | None:
        found = super().find(key_hash)
        self._pause.after("find_key")
        return found


class PausingClusters(ClusterStore):
    def __init__(self, db: Dynamo, pause: Pause) -> None:
        super().__init__(db)
        self._pause = pause

    def get(self, cluster_id: str) -> Cluster:
        found = super().get(cluster_id)
        self._pause.after("get_cluster")
        return found


def racing_client(deps: Deps, method: str, meanwhile: Callable[[], None]) -> Any:
    """The app over the table, pausing once as `Pause` says."""
    pause = Pause(method, meanwhile)
    repo = Repository(deps.repo.db)
    repo.keys = PausingKeys(deps.repo.db, pause)
    repo.clusters = PausingClusters(deps.repo.db, pause)
    return CheckedClient(create_app(dataclasses.replace(deps, repo=repo)))


def test_a_key_revoked_while_a_request_loads_it_is_refused_next(
    api: Api, tenant: Tenant, deps: Deps
) -> None:
    key_id = api.admin("GET", f"/clusters/{tenant.cluster['id']}/keys").json[0]["id"]

    def revoke() -> None:
        path = f"/clusters/{tenant.cluster['id']}/keys/{key_id}"
        assert api.admin("DELETE", path).status_code == 204

    racing = racing_client(deps, "find_key", revoke)
    headers = {"Authorization": f"Bearer {api.tenant_key}"}
    assert racing.simulate_get(f"{PUBLIC_BASE}/cluster", headers=headers).status_code == 200

    assert error_of(api.tenant("GET", "/cluster")) == (401, "unauthorized")


def test_a_cluster_suspended_while_a_request_loads_its_key_is_refused_next(
    api: Api, tenant: Tenant, deps: Deps
) -> None:
    def suspend() -> None:
        assert api.admin("POST", f"/clusters/{tenant.cluster['id']}/suspend").status_code == 200

    racing = racing_client(deps, "get_cluster", suspend)
    headers = {"Authorization": f"Bearer {api.tenant_key}"}
    assert racing.simulate_get(f"{PUBLIC_BASE}/capacity", headers=headers).status_code == 200

    assert error_of(api.tenant("GET", "/cluster")) == (403, "invalid_cluster")
