"""Idempotency-Key: a retried write answers the first answer and acts once, however the
retries interleave; a key reused for another request is refused."""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import multiprocessing
import os
import signal
import socketserver
import threading
import time
import uuid
from collections.abc import Iterator
from multiprocessing.queues import Queue
from wsgiref import simple_server

import falcon.testing
import pytest

from handlers.app import create_app, deps_from
from infra.table.idempotency import IdempotencyStore
from services.deps import Deps
from shared.settings import Settings
from tests.fixtures.corral import DEFAULT_PLAN, PUBLIC, Api, Tenant
from tests.fixtures.openapi_check import CheckedClient
from tests.functional.test_concurrency import race

RETRIES = 20


def test_concurrent_retries_of_a_create_make_one_container(
    api: Api, tenant: Tenant, deps: Deps
) -> None:
    key = str(uuid.uuid4())
    body = {"name": "once", "egg_id": tenant.egg["id"]}
    headers = {"Authorization": f"Bearer {api.tenant_key}", "Idempotency-Key": key}

    def create() -> falcon.testing.Result:
        return api.client.simulate_post(f"{PUBLIC}/containers", json=body, headers=headers)

    answers = race([create] * RETRIES)
    assert all(a.status_code == 202 for a in answers), [a.text for a in answers]
    operation_ids = {a.json["operation"]["id"] for a in answers}
    container_ids = {a.json["container"]["id"] for a in answers}
    assert len(operation_ids) == 1 and len(container_ids) == 1
    replayed = [a for a in answers if a.headers.get("Idempotent-Replayed") == "true"]
    assert len(replayed) == RETRIES - 1
    listed = api.tenant("GET", "/containers").json
    assert [c["id"] for c in listed] == list(container_ids)
    assert deps.repo.clusters.get(tenant.cluster["id"]).container_count == 1
    assert deps.jobs.queue.count == 1


def test_same_key_other_body_is_refused(api: Api, tenant: Tenant) -> None:
    headers = {"Authorization": f"Bearer {api.tenant_key}", "Idempotency-Key": "k-1"}
    first = api.client.simulate_post(
        f"{PUBLIC}/containers", json={"name": "a", "egg_id": tenant.egg["id"]}, headers=headers
    )
    assert first.status_code == 202, first.text
    other = api.client.simulate_post(
        f"{PUBLIC}/containers", json={"name": "b", "egg_id": tenant.egg["id"]}, headers=headers
    )
    assert other.status_code == 409, other.text
    assert other.json["error"]["code"] == "idempotency_key_reused"
    # Another route with the same key is another request too.
    container = first.json["container"]["id"]
    deleted = api.client.simulate_delete(f"{PUBLIC}/containers/{container}", headers=headers)
    assert deleted.json["error"]["code"] == "idempotency_key_reused"
    assert len(api.tenant("GET", "/containers").json) == 1


def test_keys_are_scoped_to_the_api_key(api: Api, tenant: Tenant) -> None:
    """The same Idempotency-Key from another API key is another request."""
    other_key = api.make_key(tenant.cluster["id"], "other")
    body = {"name": "a", "egg_id": tenant.egg["id"]}
    ids = set()
    for key in (api.tenant_key, other_key):
        headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": "shared"}
        resp = api.client.simulate_post(f"{PUBLIC}/containers", json=body, headers=headers)
        assert resp.status_code == 202, resp.text
        ids.add(resp.json["container"]["id"])
    assert len(ids) == 2


def test_errors_are_not_kept_and_a_retry_acts(api: Api, tenant: Tenant) -> None:
    """A request refused before it wrote anything leaves no record: fixing the cause and
    retrying with the same key acts (the answer then is the one kept)."""
    headers = {"Authorization": f"Bearer {api.tenant_key}", "Idempotency-Key": "grow"}
    body = {"name": "a", "egg_id": tenant.egg["id"], "ram_mb": 8192}
    refused = api.client.simulate_post(f"{PUBLIC}/containers", json=body, headers=headers)
    assert refused.json["error"]["code"] == "capacity_exceeded"
    resized = api.admin(
        "PATCH",
        f"/clusters/{tenant.cluster['id']}",
        {"plan": {"name": "test", **DEFAULT_PLAN, "ram_mb": 16384}},
    )
    assert resized.status_code == 200, resized.text
    accepted = api.client.simulate_post(f"{PUBLIC}/containers", json=body, headers=headers)
    assert accepted.status_code == 202, accepted.text
    again = api.client.simulate_post(f"{PUBLIC}/containers", json=body, headers=headers)
    assert again.json == accepted.json


def new_egg(name: str) -> dict[str, object]:
    return {
        "name": name,
        "engine": "docker",
        "image": "corral/busybox:latest",
        "minimum": {"cpu_cores": 0.1, "ram_mb": 16, "storage_mb": 0},
        "defaults": {"cpu_cores": 0.5, "ram_mb": 64, "storage_mb": 256, "io": 100},
    }


def test_operator_writes_take_keys_too(api: Api) -> None:
    headers = {"Authorization": f"Bearer {api.operator_key}", "Idempotency-Key": "egg-1"}
    body = new_egg("e")
    first = api.client.simulate_post("/api/v1/eggs", json=body, headers=headers)
    assert first.status_code == 201, first.text
    second = api.client.simulate_post("/api/v1/eggs", json=body, headers=headers)
    assert second.status_code == 201 and second.json == first.json
    assert [e["id"] for e in api.admin("GET", "/eggs").json] == [first.json["id"]]


def test_malformed_keys_are_refused(api: Api, tenant: Tenant) -> None:
    for value in ("", "x" * 256, "caf\u00e9"):
        headers = {"Authorization": f"Bearer {api.tenant_key}", "Idempotency-Key": value}
        resp = api.client.simulate_post(
            f"{PUBLIC}/containers", json={"name": "a", "egg_id": tenant.egg["id"]}, headers=headers
        )
        assert resp.status_code == 400, resp.text
        assert resp.json["error"]["code"] == "invalid_input"
    assert api.tenant("GET", "/containers").json == []


@contextlib.contextmanager
def served(deps: Deps) -> Iterator[str]:
    """The app on a real socket (wsgiref, a thread per request): a client can hang up."""

    class Server(socketserver.ThreadingMixIn, simple_server.WSGIServer):
        daemon_threads = True

    class QuietHandler(simple_server.WSGIRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = simple_server.make_server(
        "127.0.0.1", 0, create_app(deps), server_class=Server, handler_class=QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def _call(
    address: str, method: str, path: str, headers: dict[str, str], body: object = None
) -> tuple[int, dict[str, str], object]:
    conn = http.client.HTTPConnection(address, timeout=20)
    try:
        payload = json.dumps(body) if body is not None else None
        conn.request(method, path, body=payload, headers=headers)
        answer = conn.getresponse()
        headers = {name.lower(): value for name, value in answer.getheaders()}
        return answer.status, headers, json.loads(answer.read())
    finally:
        conn.close()


def test_a_lost_answer_retried_is_the_same_operation(api: Api, tenant: Tenant, deps: Deps) -> None:
    """The client sends a create and hangs up before the answer; the retry with the same
    key answers the operation the first request started, and there is one container."""
    headers = {
        "Authorization": f"Bearer {api.tenant_key}",
        "Content-Type": "application/json",
        "Idempotency-Key": str(uuid.uuid4()),
    }
    body = {"name": "lost", "egg_id": tenant.egg["id"]}
    with served(deps) as address:
        conn = http.client.HTTPConnection(address, timeout=10)
        conn.request("POST", f"{PUBLIC}/containers", body=json.dumps(body), headers=headers)
        conn.sock.close()  # hang up, the answer unread
        conn.close()
        deadline = time.monotonic() + 20
        while not deps.repo.workloads.in_cluster(tenant.cluster["id"]):
            assert time.monotonic() < deadline, "the first request never created its container"
            time.sleep(0.05)
        status, answer_headers, retried = _call(
            address, "POST", f"{PUBLIC}/containers", headers, body
        )
        assert status == 202, retried
        assert answer_headers.get("idempotent-replayed") == "true"
        auth = {"Authorization": headers["Authorization"]}
        _, _, listed = _call(address, "GET", f"{PUBLIC}/containers", auth)
    assert isinstance(retried, dict) and isinstance(listed, list)
    assert [c["id"] for c in listed] == [retried["container"]["id"]]
    operation = deps.repo.operations.get(tenant.cluster["id"], retried["operation"]["id"])
    assert operation.workload_id == retried["container"]["id"]
    assert deps.jobs.queue.count == 1


def _serve_and_die_storing_an_answer(settings: Settings, ports: Queue[int]) -> None:
    """A real API process (its own table and Redis clients) that is SIGKILLed at the
    point where a keyed write, its transaction committed, stores its answer."""

    def die(*args: object, **kwargs: object) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    IdempotencyStore.complete = die  # type: ignore[method-assign]  # here only
    server = simple_server.make_server("127.0.0.1", 0, create_app(deps_from(settings)))
    ports.put(server.server_port)
    server.serve_forever()


def killed_and_retried(
    deps: Deps, key: str, method: str, path: str, body: object
) -> list[falcon.testing.Result]:
    """Send a keyed write to a real API process that is killed (SIGKILL) after the
    write commits and before its answer is stored; then retry it three times: within
    the lease, past it, and once more. The three answers."""
    headers = {
        "Authorization": f"Bearer {key}",
        "Content-Type": "application/json",
        "Idempotency-Key": str(uuid.uuid4()),
    }
    spawn = multiprocessing.get_context("spawn")
    ports: Queue[int] = spawn.Queue()
    process = spawn.Process(
        target=_serve_and_die_storing_an_answer, args=(deps.settings, ports), daemon=True
    )
    process.start()
    try:
        port = ports.get(timeout=60)
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            _call(f"127.0.0.1:{port}", method, path, headers, body)
        process.join(timeout=10)
        assert process.exitcode == -signal.SIGKILL, "the process did not die storing the answer"
    finally:
        if process.is_alive():
            process.kill()

    def retry(**changed: float) -> falcon.testing.Result:
        settings = dataclasses.replace(deps.settings, **changed)  # type: ignore[arg-type]
        client = CheckedClient(create_app(dataclasses.replace(deps, settings=settings)))
        return client.simulate_request(method, path, json=body, headers=headers)

    return [
        retry(idempotency_wait_seconds=0.1),  # the first may still be answering
        retry(idempotency_lease_seconds=0.0),  # it cannot be: it is dead
        retry(),
    ]


def test_a_create_killed_after_its_commit_is_answered_by_a_retry(
    api: Api, tenant: Tenant, deps: Deps
) -> None:
    """Within the lease a retry answers 409 (retry shortly); past it, the answer of
    what the dead request did (its status, container and operation), kept for the
    next retries, and nothing is done again."""
    assert api.tenant_key is not None
    body = {"name": "killed", "egg_id": tenant.egg["id"]}
    early, late, again = killed_and_retried(
        deps, api.tenant_key, "POST", f"{PUBLIC}/containers", body
    )
    (operation,) = deps.repo.operations.in_cluster(tenant.cluster["id"])
    assert deps.jobs.queue.count == 1
    assert early.status_code == 409, early.text
    assert early.json["error"]["code"] == "conflict"
    assert late.status_code == 202, late.text
    assert late.headers.get("Idempotent-Replayed") == "true"
    assert late.json["operation"]["id"] == operation.id
    assert late.json["container"]["id"] == operation.workload_id
    assert again.status_code == 202 and again.json == late.json
    assert deps.jobs.queue.count == 1, "nothing was done again"
    listed = api.tenant("GET", "/containers").json
    assert [c["id"] for c in listed] == [operation.workload_id]


def test_an_operator_create_killed_after_its_commit_is_answered_by_a_retry(
    api: Api, deps: Deps
) -> None:
    """Another route, another shape (201, the egg itself): the same mechanism."""
    body = new_egg("killed")
    _, late, again = killed_and_retried(deps, api.operator_key, "POST", "/api/v1/eggs", body)
    (egg,) = api.admin("GET", "/eggs").json
    assert late.status_code == 201, late.text
    assert late.json == egg and again.json == egg


def test_a_replayed_key_creation_shows_its_secret_and_the_table_never_holds_it(
    api: Api, tenant: Tenant, deps: Deps
) -> None:
    """A minted key's secret is shown once, and again to a retry of the same request,
    but the stored answer holds it sealed; with no CORRAL_SECRET_KEY to seal it
    with, the answer is not kept and the retry is told what happened."""
    headers = {"Authorization": f"Bearer {api.tenant_key}", "Idempotency-Key": "mint-once"}
    body = {"name": "ci", "verbs": ["read"]}
    first = api.client.simulate_post(f"{PUBLIC}/keys", json=body, headers=headers)
    again = api.client.simulate_post(f"{PUBLIC}/keys", json=body, headers=headers)
    assert first.status_code == again.status_code == 201, (first.text, again.text)
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json["secret"] == first.json["secret"]

    key_id = api.tenant("GET", "/keys/current").json["id"]
    record = IdempotencyStore(deps.repo.db).find(key_id, "mint-once")
    assert record is not None and record.sealed and record.body
    assert first.json["secret"].encode() not in record.body

    unsealed = dataclasses.replace(deps.settings, secret_key=None)
    client = CheckedClient(create_app(dataclasses.replace(deps, settings=unsealed)))
    headers["Idempotency-Key"] = "mint-unsealed"
    made = client.simulate_post(f"{PUBLIC}/keys", json=body, headers=headers)
    assert made.status_code == 201, made.text
    retried = client.simulate_post(f"{PUBLIC}/keys", json=body, headers=headers)
    assert retried.status_code == 409, retried.text
    assert "carried out" in retried.json["error"]["message"]
    record = IdempotencyStore(deps.repo.db).find(key_id, "mint-unsealed")
    assert record is not None and record.sealed and record.body is None
