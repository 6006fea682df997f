"""Health, logs and measured load through the API, against real Redis, DynamoDB Local
and a host that does not answer: validation, error codes, staleness, host views."""

from __future__ import annotations

import dataclasses
import time
from datetime import timedelta

import falcon.testing
import pytest

from handlers.public.observe import parse_since
from infra.table.expression import Expression
from services.deps import Deps
from shared.clock import utc_now
from shared.health import Health, HealthState, HostLoad
from shared.models import HostStatus
from shared.settings import Settings
from tests.fixtures.corral import Api, Tenant
from tests.fixtures.priority import while_serving
from workers import context
from workers.collector import collect_health

UNKNOWN_ID = "0c7d8a4e-0000-4000-8000-000000000000"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, logs_timeout_seconds=1.0)


def _container(tenant: Tenant) -> str:
    resp = tenant.create(name="observed")
    assert resp.status_code == 202, resp.text
    return str(resp.json["container"]["id"])


def _error(resp: falcon.testing.Result) -> tuple[int, str]:
    return resp.status_code, resp.json["error"]["code"]


# -- validation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"tail": "0"}, "query.tail"),
        ({"tail": "10001"}, "query.tail"),
        ({"tail": "-1"}, "query.tail"),
        ({"tail": "ten"}, "query.tail"),
        ({"tail": "1.5"}, "query.tail"),
        ({"tail": "9" * 5000}, "query.tail"),
        ({"since": "yesterday"}, "query.since"),
        ({"since": "-5"}, "query.since"),
        ({"since": "1710410700.1234567891"}, "query.since"),
        ({"since": "1969-12-31T23:59:59Z"}, "query.since"),
        ({"since": "2024-13-01T00:00:00Z"}, "query.since"),
        ({"follow": "maybe"}, "query.follow"),
    ],
)
def test_bad_query_parameters_are_invalid_input(
    tenant: Tenant, api: Api, params: dict[str, str], loc: str
) -> None:
    cid = _container(tenant)
    started = time.monotonic()
    resp = api.tenant("GET", f"/containers/{cid}/logs", params=params)
    assert _error(resp) == (400, "invalid_input"), resp.text
    assert [d["loc"] for d in resp.json["error"]["details"]] == [loc]
    assert time.monotonic() - started < 0.5  # refused before any job is enqueued


def test_every_bad_parameter_is_reported_at_once(tenant: Tenant, api: Api) -> None:
    cid = _container(tenant)
    resp = api.tenant(
        "GET", f"/containers/{cid}/logs", params={"tail": "0", "since": "x", "follow": "2"}
    )
    assert _error(resp) == (400, "invalid_input")
    locs = [d["loc"] for d in resp.json["error"]["details"]]
    assert locs == ["query.tail", "query.since", "query.follow"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1710410700", 1_710_410_700_000_000_000),
        ("1710410700.5", 1_710_410_700_500_000_000),
        ("0", 0),
        ("2024-03-14T10:05:00Z", 1_710_410_700_000_000_000),
        ("2024-03-14T12:05:00+02:00", 1_710_410_700_000_000_000),
        ("2024-03-14T12:05:00 02:00", 1_710_410_700_000_000_000),  # '+' unescaped in a URL
        ("2024-03-14T10:05:00", 1_710_410_700_000_000_000),  # no offset: UTC
        ("2024-03-14T10:05:00.25Z", 1_710_410_700_250_000_000),
    ],
)
def test_since_takes_unix_seconds_or_iso_8601(raw: str, expected: int) -> None:
    assert parse_since(raw) == expected


# -- errors -------------------------------------------------------------------------


def test_logs_answer_host_timeout_when_no_worker_answers(tenant: Tenant, api: Api) -> None:
    cid = _container(tenant)
    started = time.monotonic()
    resp = api.tenant("GET", f"/containers/{cid}/logs")
    waited = time.monotonic() - started
    assert _error(resp) == (504, "host_timeout"), resp.text
    assert 0.9 <= waited < 3.0


def test_logs_answer_host_timeout_when_the_host_is_unreachable(
    tenant: Tenant, api: Api, deps: Deps, worker_context: context.WorkerContext
) -> None:
    cid = _container(tenant)  # its host's address is a socket that does not exist
    started = time.monotonic()
    resp = while_serving(deps, lambda: api.tenant("GET", f"/containers/{cid}/logs"))
    assert _error(resp) == (504, "host_timeout"), resp.text
    assert time.monotonic() - started < 0.9  # the worker answered; the wait did not expire
    assert "nonexistent" not in resp.text  # host details stay in the worker's log


def test_follow_answers_the_error_before_streaming(tenant: Tenant, api: Api) -> None:
    cid = _container(tenant)
    resp = api.tenant("GET", f"/containers/{cid}/logs", params={"follow": "1"})
    assert _error(resp) == (504, "host_timeout")
    assert resp.headers["content-type"].startswith("application/json")


def test_unknown_or_deleted_containers_are_not_found(tenant: Tenant, api: Api, deps: Deps) -> None:
    for suffix in ("health", "logs"):
        resp = api.tenant("GET", f"/containers/{UNKNOWN_ID}/{suffix}")
        assert _error(resp) == (404, "not_found"), suffix
    cid = _container(tenant)
    deps.repo.db.update(
        f"CLUSTER#{tenant.cluster['id']}", f"WORKLOAD#{cid}", Expression().set("status", "deleted")
    )
    for suffix in ("health", "logs"):
        resp = api.tenant("GET", f"/containers/{cid}/{suffix}")
        assert _error(resp) == (404, "not_found"), suffix


def test_operator_keys_cannot_read_tenant_logs(tenant: Tenant, api: Api) -> None:
    cid = _container(tenant)
    resp = api.tenant("GET", f"/containers/{cid}/logs", key=api.operator_key)
    assert _error(resp) == (401, "unauthorized")


# -- health -------------------------------------------------------------------------


def test_a_container_never_measured_says_unknown(tenant: Tenant, api: Api) -> None:
    cid = _container(tenant)
    expected = {
        "cpu_percent": 0.0,
        "memory_mb": 0,
        "disk_mb": 0,
        "last_heartbeat": None,
        "uptime_secs": 0,
        "state": "unknown",
        "stale": True,
        "reason": "not_measured",
    }
    assert api.tenant("GET", f"/containers/{cid}/health").json == expected
    assert api.tenant("GET", f"/containers/{cid}").json["health"] == expected
    assert api.tenant("GET", "/containers").json[0]["health"] == expected


def test_health_shows_the_stored_measurement_until_it_is_stale(
    tenant: Tenant, api: Api, deps: Deps
) -> None:
    cid = _container(tenant)
    now = utc_now().replace(microsecond=0)
    measured = Health(
        state=HealthState.RUNNING,
        heartbeat=now,
        fresh_until=now + timedelta(seconds=90),
        cpu_percent=12.5,
        memory_mb=256,
        disk_mb=1024,
        uptime_secs=3600,
    )
    assert deps.repo.health.record_workload(tenant.cluster["id"], cid, measured)
    body = api.tenant("GET", f"/containers/{cid}/health").json
    assert body == {
        "cpu_percent": 12.5,
        "memory_mb": 256,
        "disk_mb": 1024,
        "last_heartbeat": int(now.timestamp()),
        "uptime_secs": 3600,
        "state": "running",
        "stale": False,
        "reason": None,
    }
    # The heartbeat ages past its window: the last numbers stay, the state is unknown.
    old = dataclasses.replace(measured, fresh_until=now - timedelta(seconds=1))
    deps.repo.health.record_workload(tenant.cluster["id"], cid, old)
    body = api.tenant("GET", f"/containers/{cid}/health").json
    assert body["state"] == "unknown" and body["stale"] is True
    assert body["reason"] == "heartbeat_stale"
    assert body["cpu_percent"] == 12.5 and body["last_heartbeat"] == int(now.timestamp())


def test_an_older_sample_never_replaces_a_newer_one(tenant: Tenant, deps: Deps) -> None:
    cid = _container(tenant)
    cluster_id = tenant.cluster["id"]
    newer = Health(state=HealthState.RUNNING, sampled_ns=2_000, cpu_percent=50.0)
    older = Health(state=HealthState.RUNNING, sampled_ns=1_000, cpu_percent=5.0)
    assert deps.repo.health.record_workload(cluster_id, cid, newer, sample=True)
    assert not deps.repo.health.record_workload(cluster_id, cid, older, sample=True)
    health = deps.repo.workloads.get(cluster_id, cid).health
    assert health is not None
    assert health.cpu_percent == 50.0
    # the version (optimistic lock of operations) is untouched by measurements
    assert deps.repo.workloads.get(cluster_id, cid).version == 1


def test_collector_marks_workloads_of_an_unreachable_host_unknown(
    tenant: Tenant, api: Api, deps: Deps, worker_context: context.WorkerContext
) -> None:
    cid = _container(tenant)
    report = collect_health()
    assert report["unknown"] == {cid: "host_unreachable"}
    body = api.tenant("GET", f"/containers/{cid}/health").json
    assert body["state"] == "unknown" and body["reason"] == "host_unreachable"

    # once the health check marks the host down, the collector no longer tries it
    host = deps.repo.hosts.get(tenant.host["id"])
    deps.repo.hosts.record_health(host, HostStatus.DOWN, utc_now(), heartbeat=None)
    started = time.monotonic()
    assert collect_health()["unknown"] == {cid: "host_down"}
    assert time.monotonic() - started < 2
    assert api.tenant("GET", f"/containers/{cid}/health").json["reason"] == "host_down"


# -- operator views -----------------------------------------------------------------


def test_host_and_stats_show_measured_load_beside_capacity(
    tenant: Tenant, api: Api, deps: Deps
) -> None:
    host_id = tenant.host["id"]
    assert api.admin("GET", f"/hosts/{host_id}").json["load"] is None
    now = utc_now()
    load = HostLoad(
        cpu_percent=150.0,
        memory_mb=300,
        disk_mb=20,
        workloads=3,
        measured_at=now,
        fresh_until=now + timedelta(seconds=90),
    )
    deps.repo.health.record_host_load(host_id, load)
    host = api.admin("GET", f"/hosts/{host_id}").json
    assert host["capacity"]["cpu_cores"] == 64
    assert host["load"] == {
        "cpu_percent": 150.0,
        "cpu_cores": 1.5,
        "memory_mb": 300,
        "disk_mb": 20,
        "workloads": 3,
        "measured_at": host["load"]["measured_at"],
        "stale": False,
    }
    stats = api.admin("GET", "/stats").json
    assert stats["capacity"] == {"cpu_cores": 64, "ram_mb": 262144}
    assert stats["load"] == {
        "cpu_percent": 150.0,
        "cpu_cores": 1.5,
        "memory_mb": 300,
        "disk_mb": 20,
        "workloads": 3,
        "hosts_measured": 1,
    }
    # a stale sum is shown on the host, flagged, and left out of the totals
    deps.repo.health.record_host_load(host_id, dataclasses.replace(load, fresh_until=now))
    assert api.admin("GET", f"/hosts/{host_id}").json["load"]["stale"] is True
    assert api.admin("GET", "/stats").json["load"]["hosts_measured"] == 0
