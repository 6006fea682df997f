"""Managed databases on their servers: the jobs that create and drop them, the
periodic check of database hosts, and the connection variables of the databases
bound to a container. The table is the truth: a job reads the record, converges the
server to it, and records the outcome under the condition that the record is still
where the job found it, so running one twice changes nothing."""

from __future__ import annotations

import logging
from contextlib import suppress

from infra.drivers.database import DatabaseServer, server_for
from shared.databases import DatabaseHost, DatabaseStatus, ManagedDatabase, connection_environment
from shared.errors import Failure, HostError, NotFound
from shared.models import Workload
from shared.sealing import SealingError, unseal
from workers import context

log = logging.getLogger("corral.databases")

HOST_GONE = Failure("database_host_removed", "The database's host was removed from Corral.")


def _internal(exc: Exception) -> Failure:
    return Failure(
        "internal_error",
        "Corral failed to create the database. The operator has the details.",
        f"{type(exc).__name__}: {exc}",
    )


def _open(ctx: context.WorkerContext, sealed: str) -> str:
    key = ctx.settings.secret_key
    if key is None:
        raise SealingError("this worker has no CORRAL_SECRET_KEY to open a database password")
    return unseal(key, sealed)


def _server(ctx: context.WorkerContext, host: DatabaseHost) -> DatabaseServer:
    return server_for(host, _open(ctx, host.password))


def create_database(cluster_id: str, database_id: str) -> str:
    """RQ job: create an operator's database and its user; `ready`, or `error` with the
    reason (and whatever was made dropped again)."""
    return converge(context.current(), cluster_id, database_id)


def delete_database(cluster_id: str, database_id: str) -> str:
    """RQ job: drop the database and its user, then the record, giving back what it
    held in the same transaction."""
    return converge(context.current(), cluster_id, database_id)


def converge(ctx: context.WorkerContext, cluster_id: str, database_id: str) -> str:
    """Bring the server to what the record says: a `creating` database is made, a
    `deleting` one dropped (and its record removed), a `ready` one's user is given the
    password the record holds (a rotation). Returns the status it ends in."""
    try:
        database = ctx.repo.databases.get(cluster_id, database_id)
    except NotFound:
        return "deleted"
    try:
        host: DatabaseHost | None = ctx.repo.database_hosts.get(database.host_id)
    except NotFound:
        host = None  # removed by force: nothing can be made, nothing is left to drop
    if database.status == DatabaseStatus.CREATING:
        return _make(ctx, database, host)
    if database.status == DatabaseStatus.DELETING:
        return _drop(ctx, database, host)
    if database.status == DatabaseStatus.READY and host is not None:
        password = _open(ctx, database.password)
        _server(ctx, host).set_password(database.connection_user, password)
    return database.status.value


def _make(ctx: context.WorkerContext, database: ManagedDatabase, host: DatabaseHost | None) -> str:
    try:
        if host is None:
            raise HostError("database host removed", code=HOST_GONE.code, public=HOST_GONE.message)
        server = _server(ctx, host)
        password = _open(ctx, database.password)
        server.create(database.connection_database, database.connection_user, password)
    except Exception as exc:  # the record must not stay `creating`: it says why instead
        failure = exc.failure() if isinstance(exc, HostError) else _internal(exc)
        log.warning("database %s: create failed: %s", database.id, exc)
        if host is not None:
            with suppress(Exception):  # a server that is down made nothing to drop
                _server(ctx, host).drop(database.connection_database, database.connection_user)
        ctx.repo.databases.set_status(
            database, DatabaseStatus.ERROR, failure, ctx.clock(), expect=DatabaseStatus.CREATING
        )
        return DatabaseStatus.ERROR.value
    ctx.repo.databases.set_status(
        database, DatabaseStatus.READY, None, ctx.clock(), expect=DatabaseStatus.CREATING
    )
    return DatabaseStatus.READY.value


def _drop(ctx: context.WorkerContext, database: ManagedDatabase, host: DatabaseHost | None) -> str:
    if host is not None:
        try:
            _server(ctx, host).drop(database.connection_database, database.connection_user)
        except HostError as exc:
            log.warning("database %s: drop failed: %s", database.id, exc)
            ctx.repo.databases.set_status(
                database, DatabaseStatus.ERROR, exc.failure(), ctx.clock(),
                expect=DatabaseStatus.DELETING,
            )  # fmt: skip
            return DatabaseStatus.ERROR.value
    ctx.repo.remove_database(database, ctx.clock())
    return "deleted"


def drop_owned(ctx: context.WorkerContext, workload: Workload) -> None:
    """Drop the tenant databases of a container that is deleted. One whose server does
    not answer stays, in `error`, for a later DELETE."""
    for database in ctx.repo.databases.in_cluster(workload.cluster_id):
        if database.owner_id != workload.id:
            continue
        if database.status != DatabaseStatus.DELETING and not ctx.repo.databases.set_status(
            database, DatabaseStatus.DELETING, None, ctx.clock(), expect=database.status
        ):
            continue
        converge(ctx, workload.cluster_id, database.id)


def connections(ctx: context.WorkerContext, workload: Workload) -> list[dict[str, str]]:
    """The connection variables of each database bound to `workload`, in binding order
    (the last one's DATABASE_URL wins)."""
    found: list[dict[str, str]] = []
    for database_id in workload.databases:
        try:
            database: ManagedDatabase = ctx.repo.databases.get(workload.cluster_id, database_id)
        except NotFound:
            continue  # deleted since: nothing to inject
        if database.status != DatabaseStatus.READY:
            continue  # failed, or on its way out: nothing to connect to
        found.append(connection_environment(database, _open(ctx, database.password)))
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
