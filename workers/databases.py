"""Managed databases on their servers: the jobs that create and drop them, the
periodic check of database hosts, and the connection variables of the databases
bound to a container. The table is the truth: a job reads the record, converges the
server to it, and records the outcome under the condition that the record is still
where the job found it, so running one twice changes nothing."""

from __future__ import annotations

import logging
from contextlib import suppress

from infra.drivers.database import DatabaseServer, server_for
from infra.secrets import SecretBox
from shared.databases import DatabaseHost, DatabaseStatus, ManagedDatabase, connection_environment
from shared.errors import Failure, HostError, NotFound
from shared.models import Workload
from workers import context

log = logging.getLogger("corral.databases")

HOST_GONE = Failure("database_host_removed", "The database's host was removed from Corral.")


def _internal(exc: Exception) -> Failure:
    return Failure(
        "internal_error",
        "Corral failed to create the database. The operator has the details.",
        f"{type(exc).__name__}: {exc}",
    )


def _server(ctx: context.WorkerContext, host: DatabaseHost) -> DatabaseServer:
    return server_for(host, SecretBox.of(ctx.settings).open(host.password))


def create_database(cluster_id: str, database_id: str) -> str:
    """RQ job: create the database and its user; `ready`, or `error` with the reason
    (and whatever was made dropped again)."""
    ctx = context.current()
    try:
        database = ctx.repo.databases.get(cluster_id, database_id)
        host = ctx.repo.database_hosts.get(database.host_id)
    except NotFound:
        return "missing"
    if database.status != DatabaseStatus.CREATING:
        return database.status.value
    box = SecretBox.of(ctx.settings)
    server = _server(ctx, host)
    try:
        server.create(
            database.connection_database, database.connection_user, box.open(database.password)
        )
    except Exception as exc:  # the record must not stay `creating`: it says why instead
        failure = exc.failure() if isinstance(exc, HostError) else _internal(exc)
        log.warning("database %s: create failed: %s", database.id, exc)
        with suppress(Exception):  # a server that is down made nothing to drop
            server.drop(database.connection_database, database.connection_user)
        ctx.repo.databases.set_status(
            database,
            DatabaseStatus.ERROR,
            failure,
            ctx.clock(),
            expect=DatabaseStatus.CREATING,
        )
        return DatabaseStatus.ERROR.value
    ctx.repo.databases.set_status(
        database, DatabaseStatus.READY, None, ctx.clock(), expect=DatabaseStatus.CREATING
    )
    return DatabaseStatus.READY.value


def delete_database(cluster_id: str, database_id: str) -> str:
    """RQ job: drop the database and its user, then the record, giving back the
    cluster's and the host's counts in the same transaction."""
    ctx = context.current()
    try:
        database = ctx.repo.databases.get(cluster_id, database_id)
    except NotFound:
        return "deleted"
    if database.status != DatabaseStatus.DELETING:
        return database.status.value
    try:
        host = ctx.repo.database_hosts.get(database.host_id)
    except NotFound:
        host = None  # removed by force: nothing left to drop
    if host is not None:
        try:
            _server(ctx, host).drop(database.connection_database, database.connection_user)
        except HostError as exc:
            log.warning("database %s: drop failed: %s", database.id, exc)
            ctx.repo.databases.set_status(
                database,
                DatabaseStatus.ERROR,
                exc.failure(),
                ctx.clock(),
                expect=DatabaseStatus.DELETING,
            )
            return DatabaseStatus.ERROR.value
    ctx.repo.remove_database(database, ctx.clock())
    return "deleted"


def connections(ctx: context.WorkerContext, workload: Workload) -> list[dict[str, str]]:
    """The connection variables of each database bound to `workload`, in binding order
    (the last one's DATABASE_URL wins)."""
    box = SecretBox.of(ctx.settings)
    found: list[dict[str, str]] = []
    for database_id in workload.databases:
        try:
            database: ManagedDatabase = ctx.repo.databases.get(workload.cluster_id, database_id)
        except NotFound:
            continue  # deleted since: nothing to inject
        found.append(connection_environment(database, box.open(database.password)))
    return found


def check_database_hosts(ctx: context.WorkerContext) -> dict[str, str]:
    """Read every database host's version; record `ready` with it, or `down` with why."""
    results: dict[str, str] = {}
    for host in ctx.repo.database_hosts.list():
        try:
            version = _server(ctx, host).version()
        except HostError as exc:
            ctx.repo.database_hosts.record_check(host.id, None, str(exc), ctx.clock())
            results[host.id] = "down"
            continue
        except Exception as exc:  # an unreadable secret: the host is unusable until fixed
            log.warning("database host %s: %s", host.id, exc)
            ctx.repo.database_hosts.record_check(host.id, None, str(exc), ctx.clock())
            results[host.id] = "down"
            continue
        ctx.repo.database_hosts.record_check(host.id, version, None, ctx.clock())
        results[host.id] = "ready"
    return results
