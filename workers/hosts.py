"""The host health check: probe every host, record ready / not_ready / down with
the heartbeat and the images it holds. Drain is the operator's; health is ours."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from infra.drivers.ssh.keys import scan_host_key
from infra.host_calls import past_deadline, reply
from infra.table.placement import lags
from shared.errors import Conflict, HostError, NotFound
from shared.models import Host, HostStatus
from workers import context
from workers.databases import check_database_hosts

log = logging.getLogger("corral.hosts")

# A host that has not answered for this long is down, not merely not ready.
DOWN_AFTER = timedelta(seconds=90)


def health_after_failure(host: Host, now: datetime) -> HostStatus:
    seen = host.last_heartbeat or host.created_at
    return HostStatus.DOWN if now - seen >= DOWN_AFTER else HostStatus.NOT_READY


def check_host(ctx: context.WorkerContext, host: Host) -> Host:
    now = ctx.clock()
    try:
        info = ctx.drivers.for_host(host).probe()
    except HostError as exc:
        health = health_after_failure(host, now)
        log.warning("host %s (%s) did not answer: %s -> %s", host.name, host.id, exc, health.value)
        recorded = _record(ctx, host, health, now, heartbeat=None, images=None)
    else:
        recorded = _record(ctx, host, HostStatus.READY, now, heartbeat=now, images=info.images)
    repair_placement_summary(ctx, recorded)
    return recorded


def repair_placement_summary(ctx: context.WorkerContext, host: Host) -> bool:
    """Copy `host` into the placement summary when the summary's copy differs (a host
    registered before the summary existed, or any drift): one read per check, a write
    only when repaired. True when it was repaired."""
    if not lags(ctx.repo.placement.entry(host.id), host):
        return False
    repaired = ctx.repo.hosts.sync_placement(host)
    if repaired:
        log.info("placement summary of host %s (%s) repaired", host.name, host.id)
    return repaired


def _record(
    ctx: context.WorkerContext,
    host: Host,
    health: HostStatus,
    now: datetime,
    *,
    heartbeat: datetime | None,
    images: tuple[str, ...] | None,
) -> Host:
    try:
        return ctx.repo.hosts.record_health(host, health, now, heartbeat=heartbeat, images=images)
    except Conflict:  # drained or undrained meanwhile: record against the fresh flag
        fresh = ctx.repo.hosts.get(host.id)
        return ctx.repo.hosts.record_health(fresh, health, now, heartbeat=heartbeat, images=images)


def check_hosts() -> dict[str, str]:
    """A whole check in this one process (a small install, the tests): every host and
    every database host, one after the other. The scheduled check spreads the hosts
    over jobs instead (workers.fleet.check_fleet). Returns host id -> status."""
    ctx = context.current()
    results: dict[str, str] = {}
    for host in ctx.repo.hosts.list():
        try:
            results[host.id] = check_host(ctx, host).status.value
        except NotFound:
            continue  # deleted while we looked
    return results | check_database_hosts(ctx)


def check_one_host(host_id: str) -> str:
    """RQ job (one host's share of the scheduled check): check the host. Returns its
    status, or "gone" when it was deleted since the check listed it."""
    ctx = context.current()
    try:
        return check_host(ctx, ctx.repo.hosts.get(host_id)).status.value
    except NotFound:
        return "gone"


def scan_key(reply_to: str, deadline: float, address: str, port: int) -> str:
    """RQ entry point (priority lane, for a waiting request): the SSH host key that
    `address:port` presents, for an operator who registers it trusting it on first use.
    Replies {"host_key": "ssh-ed25519 AAAA..."} or {"error": message}."""
    if past_deadline(deadline):
        return "expired"
    try:
        answer = {"host_key": scan_host_key(address, port, timeout=5.0)}
    except HostError as exc:
        answer = {"error": str(exc)}
    reply(context.current().jobs.redis, reply_to, answer)
    return "error" if "error" in answer else "ok"
