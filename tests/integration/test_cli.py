"""`corral`, the command line, end to end against Corral live (gunicorn, an rq worker,
the session's dockerd): what a user types, what it prints, and its exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from cli.main import app
from tests.fixtures.live import LiveCorral

pytestmark = pytest.mark.integration
CORRAL = os.path.join(os.path.dirname(sys.executable), "corral")


def corral(live: LiveCorral, *args: str, code: int = 0, **env: str) -> Any:
    """Run `corral args` against `live`; check its exit code; the JSON it printed (with
    --json) or its text."""
    result = CliRunner().invoke(app, list(args), env=live.env() | env)
    assert result.exit_code == code, (
        f"corral {' '.join(args)} exited {result.exit_code}, not {code}:\n"
        f"{result.stdout}\n{result.stderr}\n{live.log_tail(15)}"
    )
    assert "Traceback" not in result.stdout + result.stderr
    if "--json" in args and code == 0:
        return json.loads(result.stdout)
    return result.stdout + result.stderr


def test_a_container_through_its_life(live_corral: LiveCorral) -> None:
    created = corral(live_corral, "containers", "create", "cli-web", "--wait", "--json")
    container = created["container"]
    assert container["status"] == "running", created
    assert created["operation"] == created["operation"] | {
        "kind": "provision",
        "status": "succeeded",
    }
    cid = container["id"]

    listed = corral(live_corral, "containers", "list", "--json")
    assert [c["name"] for c in listed if c["id"] == cid] == ["cli-web"]
    table = corral(live_corral, "containers", "list")
    assert "cli-web" in table and "running" in table

    logs = corral(live_corral, "containers", "logs", cid)
    assert "hello from a Corral demo container" in logs

    stopped = corral(live_corral, "containers", "power", cid, "stop", "--wait", "--json")
    assert stopped["container"]["status"] == "stopped"
    resized = corral(
        live_corral, "containers", "resize", cid, "--cpu", "0.25", "--ram", "48", "--wait", "--json"
    )
    assert (
        resized["container"]["resources"] | {"cpu_cores": 0.25, "ram_mb": 48}
        == resized["container"]["resources"]
    )
    renamed = corral(live_corral, "containers", "rename", cid, "cli-renamed", "--wait", "--json")
    assert renamed["container"]["name"] == "cli-renamed"
    leased = corral(live_corral, "containers", "lease", cid, "--lifetime", "3600", "--json")
    assert leased["expires_at"] is not None
    health = corral(live_corral, "containers", "health", cid, "--json")
    assert {"cpu_percent", "memory_mb", "state"} <= set(health)

    kinds = [o["kind"] for o in corral(live_corral, "operations", "list", "--json")]
    assert kinds[:4] == ["update", "update", "power", "provision"], kinds
    first = corral(live_corral, "operations", "list", "--json")[-1]
    waited = corral(live_corral, "operations", "wait", first["id"], "--json")
    assert waited["status"] == "succeeded"

    accepted = corral(live_corral, "containers", "delete", cid, "--json")
    assert accepted["operation"]["kind"] == "delete"
    corral(live_corral, "operations", "wait", accepted["operation"]["id"])
    assert cid not in [c["id"] for c in corral(live_corral, "containers", "list", "--json")]

    # The event log holds the container's whole life, the worker's changes included.
    page = corral(live_corral, "events", "--types", "workload", "--limit", "100", "--json")
    mine = [e["type"] for e in page["events"] if e["resource"]["id"] == cid]
    assert mine[0] == "workload.created" and mine[-1] == "workload.deleted", mine
    assert "workload.running" in mine and "workload.stopped" in mine
    assert "workload.created" in corral(live_corral, "events", "--types", "workload.created")
    missing = corral(
        live_corral, "containers", "show", "c0ffee00-0000-4000-8000-000000000000", code=1
    )
    assert "error [not_found]" in missing


def test_logs_follow_prints_lines_as_they_come(live_corral: LiveCorral) -> None:
    """The installed `corral` script, following: the first line arrives while it runs."""
    cid = corral(live_corral, "containers", "create", "cli-logs", "--wait", "--json")["container"][
        "id"
    ]
    follow = subprocess.Popen(
        [CORRAL, "containers", "logs", cid, "-f", "--json"],
        env=os.environ | live_corral.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert follow.stdout is not None
        line = json.loads(follow.stdout.readline())  # bounded by the follow cap
        assert line["line"] == "hello from a Corral demo container"
        assert follow.poll() is None  # still following
    finally:
        follow.terminate()
        follow.wait(10)
    _revoking_a_key_ends_its_follows(live_corral, cid)
    corral(live_corral, "containers", "delete", cid, "--wait")


def _revoking_a_key_ends_its_follows(live: LiveCorral, cid: str) -> None:
    """Under gunicorn, a revoked key's log follow and event follow end at once."""
    cluster_id = live.demo.cluster_id
    key = corral(live, "admin", "keys", "create", cluster_id, "--name", "revoked", "--json")
    env = os.environ | live.env() | {"CORRAL_KEY": key["secret"]}
    follows = [
        subprocess.Popen(
            [CORRAL, *command], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for command in (["containers", "logs", cid, "-f", "--json"], ["events", "-f", "--json"])
    ]
    try:
        for follow in follows:
            assert follow.stdout is not None
            assert json.loads(follow.stdout.readline())  # a line, an event: following
        corral(live, "admin", "keys", "revoke", cluster_id, key["id"])
        revoked_at = time.monotonic()
        logs, events = (follow.wait(10) for follow in follows)
        # Each CLI process noticed the end and exited (its start-up is not in this).
        assert time.monotonic() - revoked_at < 2.0
        assert logs == 0  # `event: end`: the follow is over
        assert events == 2 and events_stderr(follows[1]).count("revoked") == 1
    finally:
        for follow in follows:
            if follow.poll() is None:
                follow.kill()
                follow.wait(10)


def events_stderr(process: subprocess.Popen[str]) -> str:
    assert process.stderr is not None
    return process.stderr.read()


def test_errors_print_the_envelope_and_exit_by_kind(live_corral: LiveCorral) -> None:
    unknown_egg = corral(
        live_corral, "containers", "create", "x", "--egg", "no-such-egg", "--wait", code=1
    )
    assert "error [" in unknown_egg
    bad_key = corral(live_corral, "containers", "list", code=1, CORRAL_KEY="ck_not_a_key")
    assert "error [unauthorized]" in bad_key
    bad_signal = corral(live_corral, "containers", "power", "c-1", "explode", code=1)
    assert "error [" in bad_signal
    unreachable = corral(live_corral, "capacity", code=2, CORRAL_URL="http://127.0.0.1:9")
    assert "did not answer" in unreachable
    tenant_as_operator = corral(
        live_corral, "admin", "hosts", "list", code=1, CORRAL_OPERATOR_KEY=live_corral.demo.api_key
    )
    assert "operator key" in tenant_as_operator


def test_tenant_reads(live_corral: LiveCorral) -> None:
    assert corral(live_corral, "cluster", "--json")["id"] == live_corral.demo.cluster_id
    assert "totals" in corral(live_corral, "capacity", "--json")
    assert live_corral.demo.egg_id in [e["id"] for e in corral(live_corral, "eggs", "--json")]
    assert "busybox" in corral(live_corral, "eggs")


def test_operator_commands(live_corral: LiveCorral) -> None:
    host_id = live_corral.demo.host_id
    assert host_id is not None
    hosts = corral(live_corral, "admin", "hosts", "list", "--json")
    assert [h["id"] for h in hosts] == [host_id]
    assert corral(live_corral, "admin", "hosts", "drain", host_id, "--json")["draining"] is True
    assert corral(live_corral, "admin", "hosts", "show", host_id, "--json")["draining"] is True
    assert corral(live_corral, "admin", "hosts", "undrain", host_id, "--json")["draining"] is False
    assert "local" in corral(live_corral, "admin", "hosts", "list")

    status = corral(live_corral, "admin", "status", "--json")
    assert status["totals"]["hosts"] == 1
    assert "local" in corral(live_corral, "admin", "status")
    clusters = corral(live_corral, "admin", "clusters", "list", "--json")
    assert [c["id"] for c in clusters] == [live_corral.demo.cluster_id]
    assert "demo" in corral(live_corral, "admin", "clusters", "list")
    cluster_id = live_corral.demo.cluster_id
    assert corral(live_corral, "admin", "clusters", "show", cluster_id, "--json")["name"] == "demo"

    made = corral(live_corral, "admin", "keys", "create", cluster_id, "--name", "ci", "--json")
    assert made["secret"]
    listed = corral(live_corral, "admin", "keys", "list", cluster_id, "--json")
    # (the module's earlier tests may have made and revoked keys of their own)
    assert {k["name"] for k in listed if not k["revoked"]} == {"demo", "ci"}
    assert all("secret" not in k for k in listed)
    corral(live_corral, "admin", "keys", "revoke", cluster_id, made["id"])
    revoked = corral(live_corral, "containers", "list", code=1, CORRAL_KEY=made["secret"])
    assert "unauthorized" in revoked

    eggs = corral(live_corral, "admin", "eggs", "list", "--json")
    assert live_corral.demo.egg_id in [e["id"] for e in eggs]
    shown = corral(live_corral, "admin", "eggs", "show", live_corral.demo.egg_id, "--json")
    assert shown["name"] == "busybox"
    assert corral(live_corral, "admin", "envs", "list", "--json") == []
    for op in corral(live_corral, "admin", "operations", "--json"):
        assert op["cluster_id"] == cluster_id


def test_a_failed_operation_exits_3_with_its_reason(live_corral: LiveCorral) -> None:
    """An egg whose image no host has and no registry serves (nothing listens on
    127.0.0.1:9): the create is accepted, its provision fails."""
    admin = httpx.Client(
        base_url=f"{live_corral.url}/api/v1",
        headers={"Authorization": f"Bearer {live_corral.operator_key}"},
    )
    with admin:
        body = {
            "name": "missing",
            "image": "127.0.0.1:9/corral/missing:none",
            "defaults": {"cpu_cores": 0.1, "ram_mb": 32},
        }
        egg = admin.post("/eggs", json=body)
        assert egg.status_code == 201, egg.text
        cluster = f"/clusters/{live_corral.demo.cluster_id}"
        allowed = [live_corral.demo.egg_id, egg.json()["id"]]
        assert admin.patch(cluster, json={"egg_ids": allowed}).status_code == 200
    failed = corral(
        live_corral, "containers", "create", "doomed", "--egg", egg.json()["id"], "--wait", code=3
    )
    assert "provision failed" in failed and "[registry_unreachable]" in failed, failed


def test_idempotent_creates_and_narrow_keys(live_corral: LiveCorral) -> None:
    """`--idempotency-key` makes a create safe to repeat; `corral keys create --verb read`
    mints a read-only key, which `corral keys current` describes and writes refuse."""
    args = ("containers", "create", "cli-once", "--idempotency-key", "cli-once-1", "--json")
    first, again = corral(live_corral, *args), corral(live_corral, *args)
    assert again["container"]["id"] == first["container"]["id"]
    assert again["operation"]["id"] == first["operation"]["id"]
    listed = corral(live_corral, "containers", "list", "--json")
    assert [c["id"] for c in listed if c["name"] == "cli-once"] == [first["container"]["id"]]

    minted = corral(live_corral, "keys", "create", "--name", "ro", "--verb", "read", "--json")
    read_only = {"CORRAL_KEY": minted["secret"]}
    current = corral(live_corral, "keys", "current", "--json", **read_only)
    assert current["scope"]["verbs"] == ["read"] and current["id"] == minted["id"]
    refused = corral(live_corral, "containers", "create", "nope", code=1, **read_only)
    assert "forbidden" in refused
