"""Operator API, cluster keys: the secret shown once, at most ten per cluster,
revocation taking effect on the very next call, and last use recorded."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import falcon.testing

from infra.table.repository import Repository
from tests.fixtures.corral import Api, Tenant, error_of

UNKNOWN_ID = "0c7d8a4e-0000-4000-8000-000000000000"
LISTED_FIELDS = {
    "id",
    "name",
    "prefix",
    "masked",
    "cluster_id",
    "created_at",
    "last_used_at",
    "revoked",
    "scope",
    "expires_at",
}


def keys_of(api: Api, cluster_id: str) -> list[dict[str, Any]]:
    resp = api.admin("GET", f"/clusters/{cluster_id}/keys")
    assert resp.status_code == 200, resp.text
    return list(resp.json)


def create_key(api: Api, cluster_id: str, name: str = "ci") -> falcon.testing.Result:
    return api.admin("POST", f"/clusters/{cluster_id}/keys", {"name": name})


def test_the_secret_is_shown_once_and_only_at_creation(api: Api, tenant: Tenant) -> None:
    cluster_id = tenant.cluster["id"]
    resp = create_key(api, cluster_id, "deploy-bot")

    assert resp.status_code == 201, resp.text
    created = resp.json
    secret = created["secret"]
    assert set(created) == LISTED_FIELDS | {"secret"}
    assert created["name"] == "deploy-bot"
    assert created["cluster_id"] == cluster_id
    assert created["revoked"] is False
    assert created["last_used_at"] is None
    assert secret.startswith(created["prefix"])
    assert created["masked"].startswith(created["prefix"]) and created["masked"].endswith("*")
    assert secret not in created["masked"]
    assert api.tenant("GET", "/cluster", key=secret).json["id"] == cluster_id

    listed = {k["id"]: k for k in keys_of(api, cluster_id)}
    assert set(listed[created["id"]]) == LISTED_FIELDS
    single = api.admin("GET", f"/clusters/{cluster_id}/keys/{created['id']}")
    assert single.status_code == 200 and set(single.json) == LISTED_FIELDS
    for shown in (listed.values(), [single.json]):
        assert secret not in str(list(shown))
    assert {k["name"] for k in listed.values()} == {"k", "deploy-bot"}


def test_a_key_name_defaults_and_is_validated(api: Api, tenant: Tenant) -> None:
    path = f"/clusters/{tenant.cluster['id']}/keys"
    assert api.admin("POST", path, {}).json["name"] == "default"
    for bad in ({"name": ""}, {"name": "x" * 65}, {"name": 7}, {"name": "a\nb"}, {"label": "x"}):
        assert error_of(api.admin("POST", path, bad)) == (400, "invalid_input"), bad
    assert len(keys_of(api, tenant.cluster["id"])) == 2


def test_last_used_at_is_set_once_the_key_is_used(api: Api, tenant: Tenant) -> None:
    cluster_id = tenant.cluster["id"]
    created = create_key(api, cluster_id).json
    assert (
        next(k for k in keys_of(api, cluster_id) if k["id"] == created["id"])["last_used_at"]
        is None
    )

    assert api.tenant("GET", "/capacity", key=created["secret"]).status_code == 200

    used = next(k for k in keys_of(api, cluster_id) if k["id"] == created["id"])
    assert used["last_used_at"] is not None
    assert used["last_used_at"] >= created["created_at"]
    untouched = next(k for k in keys_of(api, cluster_id) if k["name"] == "k")
    assert untouched["last_used_at"] is None


def test_at_most_ten_keys_and_revoking_frees_a_slot(api: Api, tenant: Tenant) -> None:
    cluster_id = tenant.cluster["id"]
    made = [create_key(api, cluster_id, f"k{i}") for i in range(9)]  # the fixture made one
    assert [r.status_code for r in made] == [201] * 9

    eleventh = create_key(api, cluster_id, "k10")

    assert error_of(eleventh) == (409, "key_limit_reached")
    assert len(keys_of(api, cluster_id)) == 10

    victim = made[0].json
    assert api.admin("DELETE", f"/clusters/{cluster_id}/keys/{victim['id']}").status_code == 204
    again = create_key(api, cluster_id, "k10")
    assert again.status_code == 201, again.text
    assert error_of(create_key(api, cluster_id, "k11")) == (409, "key_limit_reached")
    listed = keys_of(api, cluster_id)
    assert sum(not k["revoked"] for k in listed) == 10
    assert [k["revoked"] for k in listed if k["id"] == victim["id"]] == [True]


def test_parallel_creates_never_pass_ten_keys(api: Api, tenant: Tenant) -> None:
    cluster_id = tenant.cluster["id"]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda i: create_key(api, cluster_id, f"p{i}"), range(16)))

    codes = sorted(r.status_code for r in results)
    assert codes.count(201) == 9, codes
    assert codes.count(409) == 7, codes
    assert len(keys_of(api, cluster_id)) == 10


def test_keys_of_two_clusters_are_separate(api: Api, tenant: Tenant) -> None:
    other = api.make_cluster([tenant.egg["id"]])
    for _ in range(10):
        assert create_key(api, other["id"]).status_code == 201
    assert create_key(api, tenant.cluster["id"]).status_code == 201

    mine = keys_of(api, tenant.cluster["id"])
    assert {k["cluster_id"] for k in mine} == {tenant.cluster["id"]}
    theirs = keys_of(api, other["id"])[0]["id"]
    for method in ("GET", "DELETE"):
        resp = api.admin(method, f"/clusters/{tenant.cluster['id']}/keys/{theirs}")
        assert error_of(resp) == (404, "not_found"), method
    assert not any(k["revoked"] for k in keys_of(api, other["id"]))


def test_a_revoked_key_is_refused_on_its_very_next_call(api: Api, tenant: Tenant) -> None:
    cluster_id = tenant.cluster["id"]
    second = create_key(api, cluster_id, "second").json
    for key in (None, second["secret"]):
        assert api.tenant("GET", "/cluster", key=key).status_code == 200  # cached now
    first_id = next(k["id"] for k in keys_of(api, cluster_id) if k["name"] == "k")

    resp = api.admin("DELETE", f"/clusters/{cluster_id}/keys/{first_id}")

    assert resp.status_code == 204, resp.text
    assert resp.text == ""
    assert error_of(api.tenant("GET", "/cluster")) == (401, "unauthorized")
    assert error_of(tenant.create()) == (401, "unauthorized")
    assert api.tenant("GET", "/cluster", key=second["secret"]).status_code == 200
    revoked = api.admin("GET", f"/clusters/{cluster_id}/keys/{first_id}").json
    assert revoked["revoked"] is True


def test_revoking_twice_succeeds_and_frees_one_slot_only(api: Api, tenant: Tenant) -> None:
    cluster_id = tenant.cluster["id"]
    for i in range(9):
        create_key(api, cluster_id, f"k{i}")
    key_id = keys_of(api, cluster_id)[0]["id"]
    path = f"/clusters/{cluster_id}/keys/{key_id}"

    assert api.admin("DELETE", path).status_code == 204
    assert api.admin("DELETE", path).status_code == 204  # idempotent (issue 12, defect 3)

    assert create_key(api, cluster_id).status_code == 201
    assert error_of(create_key(api, cluster_id)) == (409, "key_limit_reached")


def test_parallel_revocations_free_one_slot(api: Api, tenant: Tenant) -> None:
    cluster_id = tenant.cluster["id"]
    for i in range(9):
        create_key(api, cluster_id, f"k{i}")
    path = f"/clusters/{cluster_id}/keys/{keys_of(api, cluster_id)[0]['id']}"

    with ThreadPoolExecutor(max_workers=6) as pool:
        codes = sorted(pool.map(lambda _: api.admin("DELETE", path).status_code, range(6)))

    assert codes == [204] * 6  # idempotent (issue 12, defect 3)
    assert create_key(api, cluster_id).status_code == 201
    assert error_of(create_key(api, cluster_id)) == (409, "key_limit_reached")


def test_unknown_or_malformed_keys_are_not_found(api: Api, tenant: Tenant) -> None:
    cluster_id = tenant.cluster["id"]
    for key_id in (UNKNOWN_ID, "x" * 81, "a%20b"):
        for method in ("GET", "DELETE"):
            resp = api.admin(method, f"/clusters/{cluster_id}/keys/{key_id}")
            assert error_of(resp) == (404, "not_found"), (method, key_id)
        resp = api.admin("DELETE", f"/clusters/{UNKNOWN_ID}/keys/{key_id}")
        assert error_of(resp) == (404, "not_found")
    assert api.tenant("GET", "/cluster").status_code == 200


def test_an_operator_key_cannot_be_revoked_through_a_cluster(
    api: Api, tenant: Tenant, repo: Repository
) -> None:
    operator = repo.keys.list(None)[0]

    resp = api.admin("DELETE", f"/clusters/{tenant.cluster['id']}/keys/{operator.id}")

    assert error_of(resp) == (404, "not_found")
    assert api.admin("GET", "/clusters").status_code == 200


def test_a_key_can_be_created_without_a_body(api: Api, tenant: Tenant) -> None:
    resp = api.client.simulate_post(
        f"/api/v1/clusters/{tenant.cluster['id']}/keys",
        headers={"Authorization": f"Bearer {api.operator_key}"},
    )
    assert resp.status_code == 201, resp.text
    assert resp.json["name"] == "default" and resp.json["secret"].startswith("corral_")
