"""Revocation and suspension hold from the very next call even when Redis fails at
the moment of the change (issue 12, defect 3): the change either fails with nothing
written (503, retry) or completes, a retry always completes it, and the workload
routes check the cluster's status in the table, not only the cached principal."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis as redis_lib
from redis.exceptions import ConnectionError as RedisConnectionError

from handlers.app import create_app
from services.deps import Deps
from shared.clock import utc_now
from shared.models import ClusterStatus
from shared.states import WorkloadStatus
from tests.fixtures.corral import Api, Tenant, error_of, make_tenant
from tests.fixtures.openapi_check import CheckedClient


class FlakyRedis(redis_lib.Redis):  # type: ignore[type-arg]
    """The real Redis, whose next pipeline (how the auth cache is cleared) fails once."""

    fail_next_pipeline = False

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        if self.fail_next_pipeline:
            self.fail_next_pipeline = False
            raise RedisConnectionError("injected: redis went away")
        return super().pipeline(*args, **kwargs)


@pytest.fixture
def flaky(redis_conn: redis_lib.Redis[bytes]) -> Iterator[FlakyRedis]:
    conn = FlakyRedis(connection_pool=redis_conn.connection_pool)
    yield conn


@pytest.fixture
def flaky_api(deps: Deps, flaky: FlakyRedis, operator_key: str) -> Api:
    flaky_deps = Deps(repo=deps.repo, jobs=deps.jobs, redis=flaky, settings=deps.settings)
    return Api(CheckedClient(create_app(flaky_deps)), operator_key)


def key_path(tenant: Tenant) -> str:
    keys = tenant.api.admin("GET", f"/clusters/{tenant.cluster['id']}/keys").json
    return f"/clusters/{tenant.cluster['id']}/keys/{keys[0]['id']}"


def test_a_revocation_redis_fails_on_is_refused_and_its_retry_takes_effect(
    flaky_api: Api, flaky: FlakyRedis
) -> None:
    tenant = make_tenant(flaky_api)
    assert tenant.api.tenant("GET", "/cluster").status_code == 200  # cached now
    path = key_path(tenant)

    flaky.fail_next_pipeline = True
    failed = tenant.api.admin("DELETE", path)

    assert error_of(failed) == (503, "service_unavailable")
    assert tenant.api.admin("GET", path).json["revoked"] is False  # nothing written
    assert tenant.api.admin("DELETE", path).status_code == 204
    assert error_of(tenant.api.tenant("GET", "/cluster")) == (401, "unauthorized")
    assert error_of(tenant.create()) == (401, "unauthorized")


def test_revoking_a_key_the_table_already_revoked_clears_its_cache(
    api: Api, tenant: Tenant, deps: Deps
) -> None:
    """The state a cache clear failing after the table write used to leave behind."""
    assert api.tenant("GET", "/cluster").status_code == 200  # cached now
    path = key_path(tenant)
    key_id = path.rsplit("/", 1)[1]
    deps.repo.revoke_key(deps.repo.keys.get(tenant.cluster["id"], key_id), utc_now())

    assert api.admin("DELETE", path).status_code == 204
    assert error_of(api.tenant("GET", "/cluster")) == (401, "unauthorized")
    assert error_of(tenant.create()) == (401, "unauthorized")


def test_a_suspension_redis_fails_on_is_refused_and_its_retry_takes_effect(
    flaky_api: Api, flaky: FlakyRedis
) -> None:
    tenant = make_tenant(flaky_api)
    assert tenant.api.tenant("GET", "/cluster").status_code == 200  # cached now
    suspend = f"/clusters/{tenant.cluster['id']}/suspend"

    flaky.fail_next_pipeline = True
    assert error_of(tenant.api.admin("POST", suspend)) == (503, "service_unavailable")
    assert tenant.api.admin("GET", f"/clusters/{tenant.cluster['id']}").json["status"] == "active"
    assert tenant.api.admin("POST", suspend).status_code == 200
    assert error_of(tenant.create()) == (403, "invalid_cluster")


def test_power_and_delete_check_the_clusters_status_in_the_table(
    api: Api, tenant: Tenant, deps: Deps
) -> None:
    """Even a principal cached before the suspension cannot stop or delete."""
    created = tenant.create()
    assert created.status_code == 202, created.text
    container_id = created.json["container"]["id"]
    workload = deps.repo.workloads.get(tenant.cluster["id"], container_id)
    assert workload.pending_op is not None
    provision = deps.repo.operations.get(tenant.cluster["id"], workload.pending_op)
    deps.repo.finish_operation(
        provision, workload, status=WorkloadStatus.RUNNING, error=None, now=utc_now()
    )
    deps.repo.clusters.set_status(tenant.cluster["id"], ClusterStatus.SUSPENDED, utc_now())

    stop = api.tenant("POST", f"/containers/{container_id}/power", {"signal": "stop"})
    delete = api.tenant("DELETE", f"/containers/{container_id}")

    assert error_of(stop) == (403, "invalid_cluster")
    assert error_of(delete) == (403, "invalid_cluster")
