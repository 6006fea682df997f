"""Bad input on every operator route that takes a body: malformed JSON, bodies that
are not objects, unknown fields at every level, a wrong JSON type at every position,
numbers out of range and missing required fields all answer 400 invalid_input (413
when too large), never a 500, and change nothing. The same body, left intact, is
accepted: each refusal is the one change's doing."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import falcon.testing
import pytest

from tests.fixtures.corral import Api, Tenant, error_of

Path = tuple[Any, ...]
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq0Cw9bmL6J8fM3p4rWn2M7Q0dD4xP6y1vU8n9s2kLr a@b"
# One value of each JSON kind; each position gets every kind but its own.
WRONG_KINDS: list[Any] = ["wrong", 7, True, [1], {"wrong": 1}, None]
MALFORMED = [
    b"{",
    b"{'name': 'x'}",
    b'{"name": "x",}',
    b'{"name": "x"} trailing',
    b"[1,",
    b"\xff\xfe\x00{",
    b'{"name": "\\ud800"',
    b"[" * 60_000,  # nested deeper than the parser goes, within the size limit
    b'{"a":' * 12_000,
]
# Issue 12, defect 9: control (Cc) and invisible formatting (Cf) characters in a name.
HIDDEN_IN_NAMES = ["ad\u202emin\x85x", "zero\u200bwidth", "c1\x9bcontrol"]
NAME_FIELDS = ("name", "owner")
NOT_OBJECTS = [b"[]", b'"text"', b"1", b"null", b"true", b"[{}]"]
PLAN = {
    "name": "p",
    "cpu_cores": 1.5,
    "ram_mb": 1024,
    "storage_mb": 2048,
    "io": 10,
    "ports": 2,
    "databases": 1,
    "backups": 1,
    "containers": 2,
    "default_lifetime": 60,
    "max_lifetime": 120,
}
ALL_RESOURCES = {
    "cpu_cores": 0.5,
    "ram_mb": 64,
    "storage_mb": 256,
    "io": 100,
    "ports": 0,
    "databases": 0,
    "backups": 0,
}
EGG_FIELDS = {
    "name": "e",
    "description": "d",
    "image": "busybox",
    "command": ["sh", "-c", "sleep 1"],
    "environment": {"A": "b"},
    "minimum": ALL_RESOURCES | {"cpu_cores": 0.25, "ram_mb": 16},
    "defaults": ALL_RESOURCES | {"cpu_cores": 1.5},
    "stop_timeout": 5,
}
HOST = {
    "name": "h",
    "driver": "docker",
    "address": "tcp://10.0.0.5:2376",
    "engines": ["docker"],
    "capacity": {"cpu_cores": 2.5, "ram_mb": 1024, "storage_mb": 100},
    "labels": {"zone": "b"},
    "tls": {"ca_cert": "-----BEGIN CERTIFICATE-----\n"},
    "port_range": [20000, 21000],
}
HOST_REQUIRED: list[Path] = [
    ("name",),
    ("address",),
    ("capacity",),
    ("capacity", "cpu_cores"),
    ("capacity", "ram_mb"),
]
# route -> (method, path template, body, paths that are required, status when intact)
ROUTES: dict[str, tuple[str, str, dict[str, Any], list[Path], int | None]] = {
    "create cluster": (
        "POST",
        "/clusters",
        {"name": "c2", "plan": PLAN, "egg_ids": ["{egg_id}"]},
        [("name",), ("plan",)],
        201,
    ),
    "patch cluster": (
        "PATCH",
        "/clusters/{cluster_id}",
        {"name": "renamed", "plan": PLAN, "egg_ids": ["{egg_id}"]},
        [],
        200,
    ),
    "create key": ("POST", "/clusters/{cluster_id}/keys", {"name": "k2"}, [], 201),
    "create egg": (
        "POST",
        "/eggs",
        EGG_FIELDS | {"engine": "docker"},
        [("name",), ("image",)],
        201,
    ),
    "patch egg": ("PATCH", "/eggs/{egg_id}", EGG_FIELDS, [], 200),
    "instantiate": (
        "POST",
        "/templates/{egg_id}/instantiate",
        {
            "cluster_id": "{cluster_id}",
            "name": "t",
            "resources": ALL_RESOURCES,
            "constraints": {"zone": "a"},
        },
        [("cluster_id",), ("name",)],
        202,
    ),
    "register host": ("POST", "/hosts", HOST, HOST_REQUIRED, 201),
    "register node": ("POST", "/nodes", HOST, HOST_REQUIRED, 201),
    "create env": (
        "POST",
        "/envs",
        {
            "id": "env-1",
            "cluster_id": "{cluster_id}",
            "owner": "alice",
            "ssh_keys": [SSH_KEY],
            "vms": [
                {
                    "image": "base.qcow2",
                    "engine": "qemu",
                    "cpu": 1,
                    "mem": 256,
                    "disk": 1024,
                    "ports": [80],
                    "deny_outgoing": False,
                }
            ],
            "lifetime": 3600,
        },
        [("id",), ("cluster_id",), ("ssh_keys",), ("vms",), ("vms", 0, "image")],
        None,  # no qemu egg or VM host here: refused after validation
    ),
}


# Optional fields that accept an explicit null.
NULLABLE = {
    "plan.default_lifetime",
    "plan.max_lifetime",
    "command",  # create egg: no command; the image's own
    "port_range",
    *(f"{part}.{f}" for part in ("minimum", "defaults") for f in ALL_RESOURCES),
    *(f"resources.{f}" for f in ALL_RESOURCES),
}


def kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def positions(value: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    """Every position below the root of a JSON value, with what it holds."""
    if isinstance(value, dict | list):
        children = value.items() if isinstance(value, dict) else enumerate(value)
        for key, child in children:
            yield (*path, key), child
            yield from positions(child, (*path, key))


def replaced(body: dict[str, Any], path: Path, new: Any) -> dict[str, Any]:
    copied = copy.deepcopy(body)
    holder: Any = copied
    for key in path[:-1]:
        holder = holder[key]
    holder[path[-1]] = new
    return copied


def removed(body: dict[str, Any], path: Path) -> dict[str, Any]:
    copied = copy.deepcopy(body)
    holder: Any = copied
    for key in path[:-1]:
        holder = holder[key]
    del holder[path[-1]]
    return copied


def filled(value: Any, ids: dict[str, str]) -> Any:
    return json.loads(
        json.dumps(value)
        .replace("{egg_id}", ids["egg_id"])
        .replace("{cluster_id}", ids["cluster_id"])
    )


def bad_bodies(
    body: dict[str, Any], required: list[Path], nullable: set[str]
) -> Iterator[tuple[str, Any]]:
    """(what was changed, the body) for every change that must be refused."""
    yield "unknown top-level field", body | {"bogus": 1}
    for path, value in positions(body):
        where = ".".join(map(str, path))
        if isinstance(value, dict):
            yield f"unknown field in {where}", replaced(body, path, value | {"bogus": 1})
        for wrong in WRONG_KINDS:
            if kind(wrong) != kind(value) and not (wrong is None and where in nullable):
                yield f"{where} = {wrong!r}", replaced(body, path, wrong)
        if path[-1] in NAME_FIELDS:
            for hidden in HIDDEN_IN_NAMES:
                yield f"{where} = {hidden!r}", replaced(body, path, hidden)
        if kind(value) == "number":
            for bad in (-1, 10**30, float("inf"), float("-inf"), float("nan")):
                yield f"{where} = {bad!r}", replaced(body, path, bad)
            if isinstance(value, int):
                yield f"{where} = 0.5", replaced(body, path, 0.5)
    for path in required:
        yield f"without {'.'.join(map(str, path))}", removed(body, path)


@pytest.fixture
def ids(api: Api, tenant: Tenant) -> dict[str, str]:
    api.make_host(name="zone-a", labels={"zone": "a"})
    return {"cluster_id": tenant.cluster["id"], "egg_id": tenant.egg["id"]}


def snapshot(api: Api, cluster_id: str) -> dict[str, Any]:
    containers = api.tenant("GET", "/containers").json  # first: it marks the key used
    return {"containers": containers} | {
        path: api.admin("GET", path).json
        for path in ("/clusters", f"/clusters/{cluster_id}/keys", "/eggs", "/hosts", "/envs")
    }


def send(
    api: Api, method: str, path: str, raw: bytes | str, **headers: str
) -> falcon.testing.Result:
    return api.client.simulate_request(
        method,
        "/api/v1" + path,
        body=raw,
        headers={
            "Authorization": f"Bearer {api.operator_key}",
            "Content-Type": "application/json",
        }
        | headers,
    )


@pytest.mark.parametrize("route", list(ROUTES))
def test_bad_bodies_are_invalid_input_and_change_nothing(
    api: Api, ids: dict[str, str], route: str
) -> None:
    method, template, body, required, accepted = ROUTES[route]
    path = template.format(**ids)
    body = filled(body, ids)
    before = snapshot(api, ids["cluster_id"])
    refused: list[tuple[str, tuple[int, str]]] = []

    # Creating a key takes an empty body (every field has a default); the rest need one.
    empty = [] if route == "create key" else [b""]
    for raw in [*MALFORMED, *NOT_OBJECTS, *empty]:
        refused.append((repr(raw[:20]), error_of(send(api, method, path, raw))))
    as_text = send(api, method, path, json.dumps(body), **{"Content-Type": "text/plain"})
    refused.append(("text/plain", error_of(as_text)))
    nullable = NULLABLE | (set(body) if method == "PATCH" else set())
    for change, bad in bad_bodies(body, required, nullable):
        refused.append((change, error_of(send(api, method, path, json.dumps(bad)))))
    too_large = send(api, method, path, json.dumps(body | {"pad": "x" * 70_000}))

    wrong = [(change, got) for change, got in refused if got != (400, "invalid_input")]
    assert wrong == [], wrong
    assert len(refused) > 20
    assert error_of(too_large) == (413, "payload_too_large")
    assert snapshot(api, ids["cluster_id"]) == before

    intact = send(api, method, path, json.dumps(body))
    if accepted is None:
        assert intact.status_code != 400 or error_of(intact)[1] != "invalid_input", intact.text
    else:
        assert intact.status_code == accepted, intact.text


def test_a_driver_of_the_wrong_type_is_invalid_input(api: Api) -> None:
    for driver in (["docker"], {"kind": "docker"}):
        body = {
            "name": "h",
            "driver": driver,
            "address": "unix:///var/run/docker.sock",
            "capacity": {"cpu_cores": 1, "ram_mb": 64},
        }
        assert error_of(api.admin("POST", "/hosts", body)) == (400, "invalid_input"), driver
