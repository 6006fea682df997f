"""Webhooks: a real HTTP receiver checks every delivery's signature; a failed delivery
is retried (with backoff) and then delivered; an endpoint failing for a day is
disabled and says why; private destinations are refused unless allowed."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from handlers.app import create_app
from services.deps import Deps
from shared.clock import utc_now
from shared.settings import Settings
from tests.fixtures.corral import Api, Tenant, error_of, run_jobs
from tests.fixtures.openapi_check import CheckedClient
from workers import context, webhooks


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, webhook_allow_private=True)


@dataclasses.dataclass
class Receiver:
    """An HTTP endpoint that verifies what it receives and answers as told."""

    url: str
    answers: list[int]  # the statuses to answer, in turn (the last one repeats)
    received: list[dict[str, Any]]
    secret: str = ""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver("", [200], [])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            timestamp = self.headers["Corral-Timestamp"]
            expected = hmac.new(
                state.secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
            ).hexdigest()
            verified = hmac.compare_digest(self.headers["Corral-Signature"], f"v1={expected}")
            status = state.answers.pop(0) if len(state.answers) > 1 else state.answers[0]
            state.received.append(
                {
                    "event": json.loads(body),
                    "verified": verified,
                    "status": status,
                    "delivery_id": self.headers["Corral-Delivery-Id"],
                }
            )
            self.send_response(status if verified else 401)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield state
    server.shutdown()


def test_a_delivery_is_signed_retried_after_a_500_and_then_delivered(
    api: Api, tenant: Tenant, deps: Deps, worker_context: context.WorkerContext, receiver: Receiver
) -> None:
    made = api.tenant("POST", "/webhooks", {"url": receiver.url, "types": ["key"]})
    assert made.status_code == 201, made.text
    hook = made.json
    assert hook["secret"].startswith("whsec_") and hook["status"] == "active"
    receiver.secret = hook["secret"]
    listed = api.tenant("GET", "/webhooks").json
    assert [w["id"] for w in listed] == [hook["id"]] and "secret" not in listed[0]

    receiver.answers = [500, 200]
    api.make_key(tenant.cluster["id"], name="second")  # key.created: delivered by a job
    run_jobs(deps)
    assert [(r["status"], r["verified"]) for r in receiver.received] == [(500, True)]
    deliveries = f"/webhooks/{hook['id']}/deliveries"
    first = api.tenant("GET", deliveries).json
    assert [(a["status_code"], a["delivered"]) for a in first] == [(500, False)]

    webhooks.deliver_all()  # the schedule's catch-up: the retry is not due yet
    assert len(receiver.received) == 1
    worker_context.clock = lambda: utc_now() + timedelta(seconds=15)
    webhooks.deliver_all()
    assert [(r["status"], r["verified"]) for r in receiver.received] == [(500, True), (200, True)]
    event = receiver.received[1]["event"]
    assert event["type"] == "key.created" and event["after"]["name"] == "second"
    assert event["cluster_id"] == tenant.cluster["id"]
    assert receiver.received[0]["event"] == event  # the same event, again
    # ... under the same delivery id, which a receiver drops duplicates by
    assert receiver.received[0]["delivery_id"] == receiver.received[1]["delivery_id"]
    attempts = api.tenant("GET", deliveries).json
    assert [(a["status_code"], a["delivered"]) for a in attempts] == [(200, True), (500, False)]
    assert attempts[0]["event_id"] == event["id"]
    api.make_key(tenant.cluster["id"], name="third")
    run_jobs(deps)
    assert receiver.received[2]["event"]["after"]["name"] == "third"
    assert receiver.received[2]["delivery_id"] != receiver.received[1]["delivery_id"]


def test_an_endpoint_failing_for_a_day_is_disabled_and_says_why(
    api: Api, tenant: Tenant, deps: Deps, worker_context: context.WorkerContext, receiver: Receiver
) -> None:
    hook = api.admin("POST", "/webhooks", {"url": receiver.url}).json  # an operator's: all
    receiver.secret = hook["secret"]
    receiver.answers = [503]
    api.make_key(tenant.cluster["id"], name="second")
    run_jobs(deps)
    assert [r["status"] for r in receiver.received] == [503]
    start = utc_now()
    for hours in (2, 12, 25):
        later = start + timedelta(hours=hours)
        worker_context.clock = lambda later=later: later  # type: ignore[misc]
        webhooks.deliver_all()
    shown = api.admin("GET", f"/webhooks/{hook['id']}").json
    assert shown["status"] == "disabled"
    assert "failed for 24 hours" in shown["disabled_reason"] and "503" in shown["disabled_reason"]
    count = len(receiver.received)
    worker_context.clock = lambda: start + timedelta(hours=30)
    webhooks.deliver_all()
    assert len(receiver.received) == count  # disabled: nothing more is sent
    types = [e["type"] for e in api.admin("GET", "/events", params={"limit": 100}).json["events"]]
    assert "webhook.disabled" in types
    assert api.admin("DELETE", f"/webhooks/{hook['id']}").status_code == 204
    assert api.admin("GET", f"/webhooks/{hook['id']}").status_code == 404


def test_private_destinations_are_refused_unless_allowed(
    deps: Deps, operator_key: str, tenant: Tenant
) -> None:
    strict = dataclasses.replace(deps.settings, webhook_allow_private=False)
    client = CheckedClient(create_app(dataclasses.replace(deps, settings=strict)))
    refusing = Api(client, operator_key)
    for url in (
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
    ):
        resp = refusing.admin("POST", "/webhooks", {"url": url})
        assert error_of(resp) == (400, "invalid_input"), url
        assert "resolves to" in resp.json["error"]["message"]
    for bad in ("ftp://example.com/x", "http://user:pw@example.com/", "not a url"):
        assert error_of(refusing.admin("POST", "/webhooks", {"url": bad})) == (400, "invalid_input")
    # Tenants cannot see the operators' endpoints, nor operators' routes theirs.
    allowed = tenant.api.admin("POST", "/webhooks", {"url": "http://127.0.0.1:9/x"}).json
    assert tenant.api.tenant("GET", f"/webhooks/{allowed['id']}").status_code == 404
