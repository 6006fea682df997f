"""Database hosts and managed databases: what the API refuses, before any server is
reached, and what it never shows."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.fixtures.corral import Api, error_of

HOST: dict[str, Any] = {
    "name": "pg",
    "engine": "postgres",
    "host": "db.internal",
    "port": 5432,
    "username": "corral",
    "password": "s3cret-admin-password",
}


def test_a_database_host_never_shows_its_password(api: Api) -> None:
    made = api.admin("POST", "/database-hosts", HOST)
    assert made.status_code == 201, made.text
    assert "password" not in made.json and HOST["password"] not in made.text
    assert made.json["health"] == "unknown" and made.json["database_count"] == 0
    for answer in (
        api.admin("GET", "/database-hosts"),
        api.admin("GET", f"/database-hosts/{made.json['id']}"),
        api.admin("PATCH", f"/database-hosts/{made.json['id']}", {"password": "n3w-password"}),
    ):
        assert answer.status_code == 200, answer.text
        assert "password" not in answer.text and "n3w-password" not in answer.text
    changed = api.admin("PATCH", f"/database-hosts/{made.json['id']}", {"max_databases": 7})
    assert changed.json["max_databases"] == 7
    assert api.admin("DELETE", f"/database-hosts/{made.json['id']}").status_code == 204
    gone = api.admin("GET", f"/database-hosts/{made.json['id']}")
    assert error_of(gone) == (404, "not_found")


@pytest.mark.parametrize(
    "change",
    [
        {"engine": "oracle"},
        {"port": 0},
        {"port": 70000},
        {"port": "5432"},
        {"host": "db.internal; rm -rf /"},
        {"host": ""},
        {"username": "a b"},
        {"password": ""},
        {"password": "a\u0000b"},
        {"password": "x" * 300},
        {"max_databases": -1},
        {"cluster_ids": "all"},
        {"extra": 1},
    ],
)
def test_a_database_host_with_bad_fields_is_invalid_input(api: Api, change: dict[str, Any]) -> None:
    resp = api.admin("POST", "/database-hosts", HOST | change)
    assert error_of(resp) == (400, "invalid_input")
    assert api.admin("GET", "/database-hosts").json == []


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x"},
        {"cluster_id": "c", "name": ""},
        {"cluster_id": "c", "name": "x", "engine": "sqlite"},
        {"cluster_id": "c", "name": "x", "version": "fifteen"},
        {"cluster_id": "c", "name": "x\u202e"},
        {"cluster_id": 5, "name": "x"},
    ],
)
def test_a_managed_database_with_bad_fields_is_invalid_input(
    api: Api, body: dict[str, Any]
) -> None:
    assert error_of(api.admin("POST", "/managed-databases", body)) == (400, "invalid_input")


def test_a_cluster_without_a_database_host_is_told_so(api: Api) -> None:
    egg = api.make_egg()
    cluster = api.make_cluster([egg["id"]])
    body = {"cluster_id": cluster["id"], "name": "db"}
    resp = api.admin("POST", "/managed-databases", body)
    assert error_of(resp) == (409, "no_host_available")
    assert api.admin("GET", f"/clusters/{cluster['id']}").json["used"]["databases"] == 0
    # a host serving another cluster only is not this cluster's
    api.admin("POST", "/database-hosts", HOST | {"cluster_ids": ["elsewhere"]})
    assert error_of(api.admin("POST", "/managed-databases", body)) == (409, "no_host_available")


def test_concurrent_creates_fill_every_database_host_exactly(api: Api) -> None:
    """Two hosts of 2 slots, 10 creates at once: a create that finds its host filled
    meanwhile moves on to the next, so exactly 4 are made, 2 on each host, and the rest
    learn that every host is full (not the cluster's limit, which has room)."""
    cluster = api.make_cluster([api.make_egg()["id"]], databases=10)
    hosts = [
        api.admin("POST", "/database-hosts", HOST | {"name": f"pg{i}", "max_databases": 2}).json
        for i in range(2)
    ]
    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(
            pool.map(
                lambda i: api.admin(
                    "POST", "/managed-databases", {"cluster_id": cluster["id"], "name": f"db{i}"}
                ),
                range(10),
            )
        )
    made = [a for a in answers if a.status_code == 201]
    assert len(made) == 4, [a.text for a in answers]
    assert {error_of(a) for a in answers if a.status_code != 201} == {(409, "no_host_available")}
    for host in hosts:
        counted = api.admin("GET", f"/database-hosts/{host['id']}").json["database_count"]
        assert counted == 2
    assert api.admin("GET", f"/clusters/{cluster['id']}").json["used"]["databases"] == 4


def test_unknown_databases_are_not_found(api: Api) -> None:
    for method, path, body in (
        ("GET", "/managed-databases/nope", None),
        ("DELETE", "/managed-databases/nope", None),
        ("POST", "/managed-databases/nope/bind", {"app_id": "x"}),
        ("DELETE", "/managed-databases/nope/bind", None),
        ("PATCH", "/database-hosts/nope", {"name": "x"}),
        ("DELETE", "/database-hosts/nope", None),
    ):
        assert error_of(api.admin(method, path, body)) == (404, "not_found"), (method, path)


def test_tenant_database_routes_check_their_input(api: Api) -> None:
    egg = api.make_egg()
    api.make_host()
    cluster = api.make_cluster([egg["id"]])
    api.tenant_key = api.make_key(cluster["id"])
    app = api.tenant("POST", "/containers", {"name": "a", "egg_id": egg["id"]}).json
    container_id = app["container"]["id"]
    path = f"/containers/{container_id}/databases"
    assert error_of(api.tenant("POST", path, {"name": "x", "engine": "db2"})) == (
        400,
        "invalid_input",
    )
    assert error_of(api.tenant("POST", path, {"name": ""})) == (400, "invalid_input")
    assert error_of(api.tenant("GET", "/containers/nope/databases")) == (404, "not_found")
    # still provisioning: one change at a time
    assert error_of(api.tenant("POST", path, {"name": "x"})) == (409, "action_not_allowed")
    assert api.tenant("GET", path).json == []
