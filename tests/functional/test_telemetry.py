"""Request ids, structured logs and GET /metrics: one id ties a client's call to the
job that carried it out, and the figures move as Corral works."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import falcon.testing
import pytest
from prometheus_client.parser import text_string_to_metric_families
from rq.serializers import JSONSerializer

from devstack.dockerd import Dockerd
from handlers.app import create_app
from infra.logs import JsonFormatter
from services.deps import Deps
from tests.fixtures.corral import PUBLIC, Api, make_tenant
from tests.fixtures.openapi_check import CheckedClient
from workers import context
from workers.worker import CorralWorker


@pytest.fixture
def metered(deps: Deps, operator_key: str) -> Api:
    """The app as gunicorn serves it: with GET /metrics."""
    return Api(CheckedClient(create_app(deps, metrics=True)), operator_key)


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Every log line of this process, formatted as the processes write them."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield out
    root.removeHandler(handler)
    root.setLevel(level)


def parsed(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]


def test_a_request_id_is_returned_as_sent_or_made_up(api: Api) -> None:
    sent = api.client.simulate_get("/health", headers={"X-Request-Id": "client-42.a"})
    made = api.client.simulate_get("/health")
    refused = api.client.simulate_get("/health", headers={"X-Request-Id": "bad id\u00e9;"})
    unauthorized = api.client.simulate_get(PUBLIC + "/cluster")

    assert sent.headers["x-request-id"] == "client-42.a"
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    assert re.fullmatch(r"[0-9a-f]{32}", refused.headers["x-request-id"])
    assert unauthorized.status_code == 401 and unauthorized.headers["x-request-id"]


def test_every_request_leaves_one_json_line(api: Api, log_lines: io.StringIO) -> None:
    api.client.simulate_get("/health", headers={"X-Request-Id": "line-1"})

    (line,) = [e for e in parsed(log_lines) if e["logger"] == "corral.http"]
    assert line["request_id"] == "line-1"
    assert (line["method"], line["route"], line["status"]) == ("GET", "/health", 200)
    assert isinstance(line["duration_ms"], float)
    assert line["level"] == "info" and str(line["time"]).endswith("Z")


def value(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def test_metrics_take_the_operator_key(metered: Api) -> None:
    assert metered.client.simulate_get("/metrics").status_code == 401
    page = metered.admin("GET", "/../../metrics")
    assert page.status_code in (200, 404)  # the path is normalised or not found, never open
    ok = metered.client.simulate_get(
        "/metrics", headers={"Authorization": f"Bearer {metered.operator_key}"}
    )
    assert ok.status_code == 200
    assert ok.headers["content-type"].startswith("text/plain")


def test_one_id_ties_the_call_to_its_job_and_the_figures_move(
    metered: Api,
    deps: Deps,
    worker_context: context.WorkerContext,
    dockerd: Dockerd,
    busybox_image: str,
    log_lines: io.StringIO,
) -> None:
    tenant = make_tenant(metered, dockerd.url)
    operator = {"Authorization": f"Bearer {metered.operator_key}"}
    before = metered.client.simulate_get("/metrics", headers=operator).text

    created = metered.client.simulate_post(
        PUBLIC + "/containers",
        json={"name": "traced", "egg_id": tenant.egg["id"]},
        headers={"Authorization": f"Bearer {metered.tenant_key}", "X-Request-Id": "trace-7"},
    )
    assert created.status_code == 202, created.text
    operation_id = created.json["operation"]["id"]
    queued = metered.client.simulate_get("/metrics", headers=operator).text
    worker = CorralWorker([deps.jobs.queue], connection=deps.redis, serializer=JSONSerializer)
    worker.work(burst=True, with_scheduler=False)
    after = metered.client.simulate_get("/metrics", headers=operator).text

    lines = parsed(log_lines)
    call = [
        e for e in lines if e["logger"] == "corral.http" and str(e["route"]).endswith("/containers")
    ]
    assert [(e["request_id"], e["operation_id"], e["status"]) for e in call] == [
        ("trace-7", operation_id, 202)
    ]
    done = [e for e in lines if e["logger"] == "corral.jobs" and e.get("outcome")]
    assert [(e["request_id"], e["operation_id"], e["outcome"]) for e in done] == [
        ("trace-7", operation_id, "succeeded")
    ]

    route = "/api/public/clusters/v1/containers"
    labels = {"route": route, "method": "POST", "status": "202"}
    assert value(after, "corral_http_requests_total", **labels) == (
        value(before, "corral_http_requests_total", **labels) + 1
    )
    provisioned = {"kind": "provision", "outcome": "succeeded"}
    assert value(after, "corral_operations_total", **provisioned) == (
        value(before, "corral_operations_total", **provisioned) + 1
    )
    finished = {"job": "run_operation", "outcome": "finished"}
    assert value(after, "corral_jobs_total", **finished) == (
        value(before, "corral_jobs_total", **finished) + 1
    )
    queue = deps.settings.queue_name
    assert value(queued, "corral_queue_depth", queue=queue) == 1
    assert value(queued, "corral_queue_oldest_job_age_seconds", queue=queue) >= 0
    assert value(after, "corral_queue_depth", queue=queue) == 0
    host = tenant.host["name"]
    assert value(after, "corral_host_capacity", host=host, resource="ram_mb") > 0
    assert value(after, "corral_host_used", host=host, resource="ram_mb") > 0
    assert value(queued, "corral_workloads", status="provisioning") == 1
    assert value(after, "corral_workloads", status="running") == 1


def test_the_plain_client_has_no_metrics_route(client: falcon.testing.TestClient) -> None:
    """The Lambda entry's app: no prometheus_client, no /metrics."""
    assert client.simulate_get("/metrics").status_code == 404
