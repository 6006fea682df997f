"""Database hosts and managed databases (001): register servers, create databases on
them (the record and every counter in one transaction, the server work in a job),
bind one to a container (its connection variables injected by recreating it)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from infra.jobs import CREATE_DATABASE, DELETE_DATABASE, Job
from infra.queue import JobQueue
from services import operations
from services.deps import Deps
from shared import rules
from shared.admin_requests import (
    BindRequest,
    DatabaseHostCreate,
    DatabaseHostUpdate,
    ManagedDatabaseCreate,
)
from shared.capacity import Resources
from shared.databases import (
    DatabaseEngine,
    DatabaseHost,
    DatabaseHostHealth,
    DatabaseStatus,
    ManagedDatabase,
    server_names,
)
from shared.errors import (
    ActionNotAllowed,
    CapacityExceeded,
    DatabaseHostFull,
    HostInUse,
    InvalidInput,
    NoHostAvailable,
    NotFound,
    ServiceUnavailable,
)
from shared.models import Engine, Operation, OperationParams, Workload
from shared.requests import TenantDatabaseCreate
from shared.sealing import seal
from shared.settings import Settings
from shared.states import OperationKind, check_updatable, operation_in_flight

PASSWORD_BYTES = 24


def _seal(settings: Settings, secret: str) -> str:
    """A password as the table keeps it: sealed with CORRAL_SECRET_KEY."""
    if settings.secret_key is None:
        raise ServiceUnavailable(
            "This Corral has no CORRAL_SECRET_KEY, so it cannot store database passwords; "
            "the operator must set one."
        )
    return seal(settings.secret_key, secret)


class DatabaseHostService:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._repo = deps.repo

    def create(self, body: DatabaseHostCreate) -> DatabaseHost:
        now = self._deps.clock()
        host = DatabaseHost(
            id=self._deps.new_id(),
            name=body.name,
            engine=body.engine,
            host=body.host,
            port=body.port,
            username=body.username,
            password=_seal(self._deps.settings, body.password),
            max_databases=body.max_databases,
            database_count=0,
            cluster_ids=tuple(dict.fromkeys(body.cluster_ids)),
            created_at=now,
            updated_at=now,
        )
        self._repo.database_hosts.create(host)
        return host

    def update(self, host_id: str, body: DatabaseHostUpdate) -> DatabaseHost:
        host = self._repo.database_hosts.get(host_id)
        fields = body.model_dump(exclude_none=True, exclude={"password", "cluster_ids"})
        if body.password is not None:
            fields["password"] = _seal(self._deps.settings, body.password)
        if body.cluster_ids is not None:
            fields["cluster_ids"] = list(dict.fromkeys(body.cluster_ids))
        if not fields:
            raise InvalidInput("Nothing to change: give at least one field.")
        return self._repo.database_hosts.update(host, fields, self._deps.clock())

    def delete(self, host_id: str) -> None:
        host = self._repo.database_hosts.get(host_id)
        if host.database_count:
            raise HostInUse(
                f"The database host holds {host.database_count} databases; delete them first."
            )
        self._repo.database_hosts.delete(host_id)


@dataclass(frozen=True)
class ChangeJob:
    """The job that carries out an operator's database's pending change (made while
    `creating`, dropped while `deleting`), under an id of its own: a second enqueue
    while it waits is a no-op, and the reconciler finds it again by that id."""

    job: Job
    args: list[str]
    job_id: str

    @classmethod
    def of(cls, database: ManagedDatabase) -> ChangeJob:
        creating = database.status == DatabaseStatus.CREATING
        job, verb = (CREATE_DATABASE, "create") if creating else (DELETE_DATABASE, "delete")
        return cls(job, [database.cluster_id, database.id], f"db-{verb}-{database.id}")

    def enqueue(self, jobs: JobQueue) -> None:
        jobs.enqueue_job(self.job, list(self.args), job_id=self.job_id)


@dataclass(frozen=True)
class NewDatabase:
    """A database being created, as decided before a host is picked: its record is made
    for each host tried."""

    id: str
    cluster_id: str
    name: str
    engine: DatabaseEngine
    sealed_password: str
    now: datetime
    version: str | None = None  # as asked; None: the host's major version
    owner_id: str | None = None  # a tenant's container (it is also bound to it)

    def on(self, host: DatabaseHost) -> ManagedDatabase:
        database_name, user = server_names(self.id)
        return ManagedDatabase(
            id=self.id,
            cluster_id=self.cluster_id,
            name=self.name,
            engine=self.engine,
            version=self.version or host.major_version,
            status=DatabaseStatus.CREATING,
            host_id=host.id,
            connection_host=host.host,
            connection_port=host.port,
            connection_user=user,
            connection_database=database_name,
            password=self.sealed_password,
            created_at=self.now,
            updated_at=self.now,
            app_id=self.owner_id,
            owner_id=self.owner_id,
        )


class DatabaseService:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._repo = deps.repo

    def create(self, body: ManagedDatabaseCreate) -> ManagedDatabase:
        cluster = self._repo.clusters.get(body.cluster_id)
        rules.require_active(cluster)
        rules.require_room(cluster, Resources(databases=1))
        hosts = self.placements(body)
        new = NewDatabase(
            id=self._deps.new_id(),
            cluster_id=cluster.id,
            name=body.name,
            engine=body.engine,
            sealed_password=_seal(self._deps.settings, secrets.token_urlsafe(PASSWORD_BYTES)),
            now=self._deps.clock(),
            version=body.version,
        )
        database = self.place(
            hosts, new, lambda d, host: self._repo.create_database(d, host, cluster, new.now)
        )
        ChangeJob.of(database).enqueue(self._deps.jobs)
        return database

    def place(
        self,
        hosts: list[DatabaseHost],
        new: NewDatabase,
        commit: Callable[[ManagedDatabase, DatabaseHost], None],
    ) -> ManagedDatabase:
        """Commit the new database on the first of `hosts` (`placements`) that still has
        a slot when `commit` takes one (a host that filled up meanwhile: the next)."""
        for host in hosts:
            database = new.on(host)
            try:
                commit(database, host)
            except DatabaseHostFull:
                continue
            return database
        raise NoHostAvailable(f"Every {new.engine.value} database host is full.")

    def placements(self, body: ManagedDatabaseCreate) -> list[DatabaseHost]:
        """The database hosts that may take it, least used first; a clear refusal when the
        engine or the version asked for has none."""
        serving = [
            h
            for h in self._repo.database_hosts.list()
            if h.engine == body.engine and h.serves(body.cluster_id)
        ]
        if not serving:
            raise NoHostAvailable(f"No {body.engine.value} database host serves this cluster.")
        if body.version is not None:
            versions = sorted({h.server_version or "unknown" for h in serving})
            serving = [h for h in serving if _has_version(h, body.version)]
            if not serving:
                raise InvalidInput(
                    f"No {body.engine.value} database host runs version {body.version}; "
                    f"the versions there are: {', '.join(versions)}."
                )
        up = [h for h in serving if h.health != DatabaseHostHealth.DOWN]
        if not up:
            raise NoHostAvailable(f"Every {body.engine.value} database host is down.")
        room = [h for h in up if h.database_count < h.max_databases]
        if not room:
            raise NoHostAvailable(f"Every {body.engine.value} database host is full.")
        return sorted(room, key=lambda h: h.database_count / max(h.max_databases, 1))

    def get(self, database_id: str) -> ManagedDatabase:
        """An operator's managed database (a tenant's, made for one container, is not)."""
        database = self._repo.databases.find(database_id)
        if database.owner_id is not None:
            raise NotFound("Database not found.")
        return database

    def delete(self, database_id: str) -> None:
        database = self.get(database_id)
        if database.status == DatabaseStatus.DELETING:
            return
        if database.status == DatabaseStatus.CREATING:
            raise ActionNotAllowed("The database is being created; delete it once it is ready.")
        if database.app_id and self._bound_to_live(database):
            raise ActionNotAllowed(
                f"The database is bound to container {database.app_id}; unbind it first."
            )
        if not self._repo.databases.set_status(
            database, DatabaseStatus.DELETING, None, self._deps.clock(), expect=database.status
        ):
            raise ActionNotAllowed("The database changed meanwhile; retry.")
        ChangeJob.of(replace(database, status=DatabaseStatus.DELETING)).enqueue(self._deps.jobs)

    def _bound_to_live(self, database: ManagedDatabase) -> bool:
        try:
            app = self._repo.workloads.get(database.cluster_id, database.app_id or "")
        except NotFound:
            return False
        return not app.status.is_gone

    # -- bind --------------------------------------------------------------------------

    def bind(self, database_id: str, body: BindRequest) -> tuple[ManagedDatabase, Operation]:
        database = self.get(database_id)
        if database.status != DatabaseStatus.READY:
            raise ActionNotAllowed(f"The database is {database.status.value}, not ready.")
        if database.app_id == body.app_id:
            raise ActionNotAllowed(f"The database is bound to {body.app_id} already.")
        if database.app_id and self._bound_to_live(database):
            raise ActionNotAllowed(
                f"The database is bound to container {database.app_id}; unbind it first."
            )
        app = self._app(database, body.app_id)
        bound = (*app.databases, database.id)
        operation = self._change(app, database, bound, body.app_id)
        return replace(database, app_id=body.app_id), operation

    def unbind(self, database_id: str) -> tuple[ManagedDatabase, Operation]:
        database = self.get(database_id)
        if not database.app_id:
            raise ActionNotAllowed("The database is not bound to a container.")
        app = self._app(database, database.app_id)
        bound = tuple(d for d in app.databases if d != database.id)
        operation = self._change(app, database, bound, None)
        return replace(database, app_id=None), operation

    def _app(self, database: ManagedDatabase, app_id: str) -> Workload:
        """A live container of the database's cluster (another cluster's is not found)."""
        app = self._repo.workloads.get(database.cluster_id, app_id)
        if app.status.is_gone:
            raise NotFound("Container not found.")
        if app.engine != Engine.DOCKER:
            raise InvalidInput("Databases are bound to containers, not VMs.")
        if app.pending_op:
            raise operation_in_flight(app.pending_op)
        check_updatable(app.status)
        return app

    def _change(
        self,
        app: Workload,
        database: ManagedDatabase,
        bound: tuple[str, ...],
        app_id: str | None,
    ) -> Operation:
        """Record the binding and the container's recreate with its new environment, in
        one transaction."""
        now = self._deps.clock()
        operation = operations.queued(
            self._deps.new_operation_id(),
            app.cluster_id,
            app.id,
            OperationKind.UPDATE,
            OperationParams(recreate=True),
            now,
        )
        self._repo.begin_operation(
            app,
            operation,
            set_fields={"databases": list(bound)},
            also=[self._repo.databases.bind(database, app_id, now)],
        )
        operations.enqueue(self._deps.jobs, operation)
        return operation


def _has_version(host: DatabaseHost, version: str) -> bool:
    found = host.server_version or ""
    return found == version or found.startswith(f"{version}.")


class TenantDatabaseService:
    """000's `databases`: a tenant's databases for one container, counted against that
    container's `databases` allocation (which its cluster's pool already holds). Each
    change is an operation on the container that first makes, rotates or drops the
    database, then recreates the container with the connection variables."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._repo = deps.repo
        self._placer = DatabaseService(deps)

    def list(self, cluster_id: str, container_id: str) -> list[ManagedDatabase]:
        container = self._live(cluster_id, container_id)
        owned = self._repo.databases.in_cluster(cluster_id)
        return [d for d in owned if d.owner_id == container.id]

    def create(
        self, cluster_id: str, container_id: str, body: TenantDatabaseCreate
    ) -> tuple[ManagedDatabase, str, Operation]:
        """The database, its password (shown this once) and the container's operation."""
        container = self._idle(cluster_id, container_id)
        rules.require_active(self._repo.clusters.get(cluster_id))
        held = container.database_count
        if held >= container.resources.databases:
            raise CapacityExceeded(
                f"The container holds {held} of its {container.resources.databases} databases; "
                "resize its databases allocation (within the cluster's limit) to add one."
            )
        request = ManagedDatabaseCreate(cluster_id=cluster_id, name=body.name, engine=body.engine)
        hosts = self._placer.placements(request)
        password = secrets.token_urlsafe(PASSWORD_BYTES)
        new = NewDatabase(
            id=self._deps.new_id(),
            cluster_id=cluster_id,
            name=body.name,
            engine=body.engine,
            sealed_password=_seal(self._deps.settings, password),
            now=self._deps.clock(),
            owner_id=container.id,
        )
        operation = self._operation(container, new.id)
        database = self._placer.place(
            hosts,
            new,
            lambda d, host: self._repo.create_tenant_database(d, host, container, operation),
        )
        operations.enqueue(self._deps.jobs, operation)
        return database, password, operation

    def rotate(
        self, cluster_id: str, container_id: str, database_id: str
    ) -> tuple[ManagedDatabase, str, Operation]:
        """A new password: set on the server, then in the container, by one operation."""
        container = self._idle(cluster_id, container_id)
        database = self._owned(container, database_id)
        if database.status != DatabaseStatus.READY:
            raise ActionNotAllowed(f"The database is {database.status.value}, not ready.")
        password = secrets.token_urlsafe(PASSWORD_BYTES)
        sealed = _seal(self._deps.settings, password)
        operation = self._operation(container, database.id)
        now = self._deps.clock()
        self._repo.begin_operation(
            container,
            operation,
            also=[self._repo.databases.set_password(database, sealed, now)],
        )
        operations.enqueue(self._deps.jobs, operation)
        return replace(database, updated_at=now), password, operation

    def delete(self, cluster_id: str, container_id: str, database_id: str) -> Operation:
        container = self._idle(cluster_id, container_id)
        database = self._owned(container, database_id)
        if database.status not in (DatabaseStatus.READY, DatabaseStatus.ERROR):
            raise ActionNotAllowed(f"The database is {database.status.value}.")
        operation = self._operation(container, database.id)
        now = self._deps.clock()
        self._repo.begin_operation(
            container,
            operation,
            set_fields={"databases": [d for d in container.databases if d != database.id]},
            also=[self._repo.databases.mark_deleting(database, now)],
        )
        operations.enqueue(self._deps.jobs, operation)
        return operation

    def _live(self, cluster_id: str, container_id: str) -> Workload:
        container = self._repo.workloads.get(cluster_id, container_id)
        if container.status.is_gone:
            raise NotFound(f"Container is {container.status.value}.")
        return container

    def _idle(self, cluster_id: str, container_id: str) -> Workload:
        container = self._live(cluster_id, container_id)
        if container.engine != Engine.DOCKER:
            raise InvalidInput("Databases are for containers, not VMs.")
        if container.pending_op:
            raise operation_in_flight(container.pending_op)
        check_updatable(container.status)
        return container

    def _owned(self, container: Workload, database_id: str) -> ManagedDatabase:
        database = self._repo.databases.get(container.cluster_id, database_id)
        if database.owner_id != container.id:
            raise NotFound("Database not found.")
        return database

    def _operation(self, container: Workload, database_id: str) -> Operation:
        return operations.queued(
            self._deps.new_operation_id(),
            container.cluster_id,
            container.id,
            OperationKind.UPDATE,
            OperationParams(recreate=True, database_id=database_id),
            self._deps.clock(),
        )
