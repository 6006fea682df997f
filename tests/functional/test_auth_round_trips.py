"""A request whose key this process has already served makes one round trip to Redis:
it confirms that Redis still caches the principal it holds in the round trip that
takes its rate-limit tokens. Redis's entry stays the authority: a revocation or a
suspension made through another process (another app, with its own held principals)
holds from the very next request, as with a single process."""

from __future__ import annotations

from typing import Any

import redis as redis_lib

from handlers.app import create_app
from services.deps import Deps
from tests.fixtures.corral import Api, Tenant, error_of
from tests.fixtures.openapi_check import CheckedClient


class CountingRedis(redis_lib.Redis):  # type: ignore[type-arg]
    """The real Redis, counting the round trips made through it (a pipeline is one)."""

    round_trips = 0

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.round_trips += 1
        return super().execute_command(*args, **options)

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        self.round_trips += 1
        return super().pipeline(*args, **kwargs)


def holding_api(deps: Deps, api: Api, redis_conn: redis_lib.Redis[bytes]) -> tuple[Api, Any]:
    """Another app (as another API process would be) on the same table and Redis, which
    has served the tenant's key twice: read into the cache, then held by that app."""
    counting = CountingRedis(connection_pool=redis_conn.connection_pool)
    own = Deps(repo=deps.repo, jobs=deps.jobs, redis=counting, settings=deps.settings)
    other = Api(CheckedClient(create_app(own)), api.operator_key, api.tenant_key)
    for _ in range(2):
        assert other.tenant("GET", "/cluster").status_code == 200
    return other, counting


def test_a_known_key_costs_one_redis_round_trip_a_request(
    api: Api, tenant: Tenant, deps: Deps, redis_conn: redis_lib.Redis[bytes]
) -> None:
    other, counting = holding_api(deps, api, redis_conn)
    counting.round_trips = 0

    answers = [other.tenant("GET", "/cluster") for _ in range(5)]

    assert counting.round_trips == 5
    assert [a.status_code for a in answers] == [200] * 5
    for answer in answers:  # the tokens were taken in that round trip
        assert int(answer.headers["RateLimit-Remaining"]) < int(answer.headers["RateLimit-Limit"])


def test_a_revocation_by_another_process_holds_at_once_where_the_key_is_held(
    api: Api, tenant: Tenant, deps: Deps, redis_conn: redis_lib.Redis[bytes]
) -> None:
    other, _ = holding_api(deps, api, redis_conn)
    key_id = other.tenant("GET", "/keys/current").json["id"]

    assert api.admin("DELETE", f"/clusters/{tenant.cluster['id']}/keys/{key_id}").status_code == 204

    assert error_of(other.tenant("GET", "/cluster")) == (401, "unauthorized")
    assert error_of(other.tenant("GET", "/cluster")) == (401, "unauthorized")


def test_a_suspension_by_another_process_holds_at_once_and_so_does_its_end(
    api: Api, tenant: Tenant, deps: Deps, redis_conn: redis_lib.Redis[bytes]
) -> None:
    other, _ = holding_api(deps, api, redis_conn)
    cluster = f"/clusters/{tenant.cluster['id']}"

    assert api.admin("POST", f"{cluster}/suspend").status_code == 200
    assert error_of(other.tenant("GET", "/cluster")) == (403, "invalid_cluster")
    assert error_of(other.tenant("GET", "/cluster")) == (403, "invalid_cluster")

    assert api.admin("POST", f"{cluster}/reactivate").status_code == 200
    assert other.tenant("GET", "/cluster").status_code == 200
