"""Request ids, log lines and GET /metrics under gunicorn as production runs it:
the asgi worker, the waiting routes as coroutines, prometheus_client in
multiprocess mode (gunicorn.conf.py gives it a directory)."""

from __future__ import annotations

import json

from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.conftest import Gunicorn
from tests.deploy.events import Request
from tests.fixtures.corral import PUBLIC, Tenant


def bearer(key: str | None, request_id: str | None = None) -> dict[str, list[str]]:
    headers = {"Authorization": [f"Bearer {key}"]}
    if request_id:
        headers["X-Request-Id"] = [request_id]
    return headers


def count(text: str, name: str, **labels: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def test_waits_and_plain_routes_carry_the_request_id_into_logs_and_metrics(
    gunicorn: Gunicorn, tenant: Tenant
) -> None:
    op_id = tenant.create().json["operation"]["id"]
    wait = gunicorn.call(
        Request(
            "GET",
            f"{PUBLIC}/operations/{op_id}/wait",
            [("timeout", "0")],
            bearer(tenant.api.tenant_key, "wait-1"),
        )
    )
    plain = gunicorn.call(
        Request("GET", f"{PUBLIC}/cluster", headers=bearer(tenant.api.tenant_key, "plain-1"))
    )
    assert (wait.status, plain.status) == (200, 200)
    assert (wait.headers["x-request-id"], plain.headers["x-request-id"]) == ("wait-1", "plain-1")

    refused = gunicorn.call(Request("GET", "/metrics", headers=bearer(tenant.api.tenant_key)))
    assert refused.status == 401
    scraped = gunicorn.call(Request("GET", "/metrics", headers=bearer(tenant.api.operator_key)))
    assert scraped.status == 200
    text = scraped.body.decode()
    waits = {"route": f"{PUBLIC}/operations/{{operation_id}}/wait", "method": "GET"}
    assert count(text, "corral_http_requests_total", status="200", **waits) >= 1
    assert count(text, "corral_http_request_duration_seconds_count", **waits) >= 1
    assert count(text, "corral_http_requests_total", route=f"{PUBLIC}/cluster") >= 1
    assert count(text, "corral_queue_depth", queue="corral-test") >= 1

    lines = [
        json.loads(line)
        for line in gunicorn.log.read_text().splitlines()
        if line.startswith("{") and '"corral.http"' in line
    ]
    by_id = {line.get("request_id"): line for line in lines}
    assert by_id["wait-1"]["route"] == waits["route"]
    assert by_id["plain-1"]["status"] == 200
