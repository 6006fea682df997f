"""The Falcon app factory. gunicorn and the Lambda entry both use it."""

from __future__ import annotations

from typing import Any

import falcon

from handlers import errors
from handlers.admin.clusters import (
    ClusterCollection,
    ClusterContainerCollection,
    ClusterContainerItem,
    ClusterItem,
    ClusterKeyCollection,
    ClusterKeyItem,
    ClusterOperationItem,
    ClusterStatusChange,
)
from handlers.admin.databases import (
    DatabaseHostCollection,
    DatabaseHostItem,
    ManagedDatabaseBind,
    ManagedDatabaseCollection,
    ManagedDatabaseItem,
)
from handlers.admin.eggs import EggCollection as AdminEggCollection
from handlers.admin.eggs import EggItem as AdminEggItem
from handlers.admin.envs import EnvCollection, EnvItem, EnvLease, EnvPower, VmItem
from handlers.admin.fleet import FleetOperations, FleetStats, FleetStatus
from handlers.admin.hosts import HostCollection, HostDrain, HostItem
from handlers.admin.images import FleetOperationItem, ImageCollection, ImagePullResource
from handlers.admin.platform import PlatformConfig, PlatformSettingsResource
from handlers.admin.templates import TemplateCollection, TemplateInstantiate, TemplateItem
from handlers.auth import Authenticator, AuthMiddleware
from handlers.compat import BASE_PATHS as COMPAT_BASE_PATHS
from handlers.compat import add_routes as add_compat_routes
from handlers.events import OperatorEvents, TenantEvents
from handlers.health import HealthResource
from handlers.idempotency import IdempotencyMiddleware
from handlers.public.backups import (
    BackupCollection,
    BackupDownload,
    BackupItem,
    BackupRestore,
)
from handlers.public.cluster import CapacityResource, ClusterResource, EggCollection
from handlers.public.containers import (
    ContainerCollection,
    ContainerItem,
    ContainerLease,
    ContainerPower,
)
from handlers.public.databases import (
    ContainerDatabaseCollection,
    ContainerDatabaseItem,
    ContainerDatabaseRotate,
)
from handlers.public.keys import CurrentKey, KeyCollection
from handlers.public.observe import ContainerHealth, ContainerLogs
from handlers.public.operations import OperationCollection, OperationItem, OperationWait
from handlers.reference import DocsAsset, DocsPage, OpenApiDocument
from handlers.telemetry import MetricsResource, Recorder, Telemetry
from handlers.web import Dashboard
from handlers.webhooks import add_routes as add_webhook_routes
from infra.queue import JobQueue, make_redis
from infra.table.dynamo import Dynamo, make_client
from infra.table.repository import Repository
from services.backups import BackupService
from services.clusters import ClusterService
from services.databases import DatabaseHostService, DatabaseService, TenantDatabaseService
from services.deps import Deps
from services.eggs import EggService
from services.envs import EnvService
from services.hosts import HostService
from services.images import ImageService
from services.platform import PlatformService
from services.workloads import WorkloadService
from shared.settings import Settings

PUBLIC_BASE = "/api/public/clusters/v1"
ADMIN_BASE = "/api/v1"


def create_app(deps: Deps, *, metrics: bool = False) -> falcon.App[falcon.Request, falcon.Response]:
    """The app. With `metrics`, requests are counted for GET /metrics (prometheus_client:
    gunicorn's app has them, the Lambda entry's does not)."""
    authenticator = Authenticator(deps)
    record: Recorder | None = None
    if metrics:
        from infra.metrics import observe_request

        record = observe_request
    middleware: list[Any] = [
        Telemetry(record),
        AuthMiddleware(authenticator),
        IdempotencyMiddleware(deps),
    ]
    if deps.settings.cors_origins:
        middleware.insert(0, falcon.CORSMiddleware(allow_origins=list(deps.settings.cors_origins)))
    app = falcon.App(middleware=middleware)
    app.req_options.strip_url_path_trailing_slash = True
    errors.register(app)

    workloads = WorkloadService(deps)
    app.add_route("/health", HealthResource(deps))
    dashboard = Dashboard()
    app.add_route("/", dashboard)
    app.add_route("/web/{name}", dashboard)

    app.add_route(f"{PUBLIC_BASE}/cluster", ClusterResource(deps))
    app.add_route(f"{PUBLIC_BASE}/capacity", CapacityResource(deps))
    app.add_route(f"{PUBLIC_BASE}/eggs", EggCollection(deps))
    app.add_route(f"{PUBLIC_BASE}/containers", ContainerCollection(deps, workloads))
    app.add_route(f"{PUBLIC_BASE}/containers/{{container_id}}", ContainerItem(deps, workloads))
    item = f"{PUBLIC_BASE}/containers/{{container_id}}"
    app.add_route(f"{item}/power", ContainerPower(deps, workloads))
    app.add_route(f"{item}/lease", ContainerLease(deps, workloads))
    app.add_route(f"{item}/health", ContainerHealth(deps, workloads))
    app.add_route(f"{item}/logs", ContainerLogs(deps, workloads))
    tenant_databases = TenantDatabaseService(deps)
    app.add_route(f"{item}/databases", ContainerDatabaseCollection(deps, tenant_databases))
    database = f"{item}/databases/{{database_id}}"
    app.add_route(database, ContainerDatabaseItem(deps, tenant_databases))
    app.add_route(f"{database}/rotate-password", ContainerDatabaseRotate(deps, tenant_databases))
    backups = BackupService(deps)
    backup = f"{item}/backups/{{backup_id}}"
    app.add_route(f"{item}/backups", BackupCollection(deps, backups))
    app.add_route(backup, BackupItem(deps, backups))
    app.add_route(f"{backup}/restore", BackupRestore(deps, backups))
    app.add_route(f"{backup}/download", BackupDownload(deps, backups))
    app.add_route(f"{PUBLIC_BASE}/keys", KeyCollection(deps))
    app.add_route(f"{PUBLIC_BASE}/keys/current", CurrentKey(deps))
    app.add_route(f"{PUBLIC_BASE}/operations", OperationCollection(deps))
    app.add_route(f"{PUBLIC_BASE}/operations/{{operation_id}}", OperationItem(deps))
    app.add_route(f"{PUBLIC_BASE}/operations/{{operation_id}}/wait", OperationWait(deps))
    app.add_route(f"{PUBLIC_BASE}/events", TenantEvents(deps))
    add_webhook_routes(app, deps, PUBLIC_BASE, tenant=True)

    _add_admin_routes(app, deps, authenticator, workloads)
    app.add_route("/openapi.json", OpenApiDocument(app, deps.settings.version))
    app.add_route("/docs", DocsPage())
    app.add_route("/docs/{name}", DocsAsset())
    if metrics:
        app.add_route("/metrics", MetricsResource(deps))
    add_compat_routes(app, deps, authenticator, workloads)
    return app


def _add_admin_routes(
    app: falcon.App[falcon.Request, falcon.Response],
    deps: Deps,
    authenticator: Authenticator,
    workloads: WorkloadService,
) -> None:
    base = ADMIN_BASE
    clusters = ClusterService(deps)
    app.add_route(f"{base}/clusters", ClusterCollection(deps, clusters))
    app.add_route(f"{base}/clusters/{{cluster_id}}", ClusterItem(deps, clusters))
    for action in ClusterStatusChange.TARGETS:
        app.add_route(
            f"{base}/clusters/{{cluster_id}}/{action}",
            ClusterStatusChange(deps, clusters, authenticator, action),
        )
    app.add_route(f"{base}/clusters/{{cluster_id}}/keys", ClusterKeyCollection(deps))
    app.add_route(f"{base}/clusters/{{cluster_id}}/containers", ClusterContainerCollection(deps))
    app.add_route(
        f"{base}/clusters/{{cluster_id}}/containers/{{container_id}}", ClusterContainerItem(deps)
    )
    app.add_route(
        f"{base}/clusters/{{cluster_id}}/operations/{{operation_id}}", ClusterOperationItem(deps)
    )
    app.add_route(
        f"{base}/clusters/{{cluster_id}}/keys/{{key_id}}", ClusterKeyItem(deps, authenticator)
    )
    eggs = EggService(deps)
    app.add_route(f"{base}/eggs", AdminEggCollection(deps, eggs))
    app.add_route(f"{base}/eggs/{{egg_id}}", AdminEggItem(deps, eggs))
    app.add_route(f"{base}/templates", TemplateCollection(deps))
    app.add_route(f"{base}/templates/{{template_id}}", TemplateItem(deps))
    app.add_route(
        f"{base}/templates/{{template_id}}/instantiate", TemplateInstantiate(deps, workloads)
    )
    host_service = HostService(deps)
    hosts, host = HostCollection(deps, host_service), HostItem(deps, host_service)
    drain = HostDrain(host_service, draining=True)
    undrain = HostDrain(host_service, draining=False)
    for noun in ("hosts", "nodes"):
        app.add_route(f"{base}/{noun}", hosts)
        app.add_route(f"{base}/{noun}/{{host_id}}", host)
        app.add_route(f"{base}/{noun}/{{host_id}}/drain", drain)
        app.add_route(f"{base}/{noun}/{{host_id}}/undrain", undrain)
    app.add_route(f"{base}/status", FleetStatus(deps))
    app.add_route(f"{base}/stats", FleetStats(deps))
    images = ImageService(deps)
    app.add_route(f"{base}/images", ImageCollection(deps, images))
    app.add_route(f"{base}/images/pull", ImagePullResource(deps, images))
    app.add_route(f"{base}/operations/{{operation_id}}", FleetOperationItem(deps))
    app.add_route(f"{base}/operations", FleetOperations(deps))
    app.add_route(f"{base}/events", OperatorEvents(deps))
    add_webhook_routes(app, deps, base, tenant=False)
    envs = EnvService(deps)
    app.add_route(f"{base}/envs", EnvCollection(deps, envs))
    app.add_route(f"{base}/envs/{{env_id}}", EnvItem(deps, envs))
    app.add_route(f"{base}/envs/{{env_id}}/lease", EnvLease(deps, envs))
    for action in EnvPower.ACTIONS:
        app.add_route(f"{base}/envs/{{env_id}}/{action}", EnvPower(deps, envs, action))
    app.add_route(f"{base}/vms/{{vm_id}}", VmItem(deps))
    app.add_route(
        f"{base}/platform/settings", PlatformSettingsResource(deps, PlatformService(deps))
    )
    base_paths = {"public": PUBLIC_BASE, "admin": ADMIN_BASE, **COMPAT_BASE_PATHS}
    app.add_route(f"{base}/platform/config", PlatformConfig(deps, base_paths))
    database_hosts = DatabaseHostService(deps)
    app.add_route(f"{base}/database-hosts", DatabaseHostCollection(deps, database_hosts))
    app.add_route(f"{base}/database-hosts/{{host_id}}", DatabaseHostItem(deps, database_hosts))
    databases = DatabaseService(deps)
    app.add_route(f"{base}/managed-databases", ManagedDatabaseCollection(deps, databases))
    managed = f"{base}/managed-databases/{{database_id}}"
    app.add_route(managed, ManagedDatabaseItem(deps, databases))
    app.add_route(f"{managed}/bind", ManagedDatabaseBind(deps, databases))


def deps_from(settings: Settings) -> Deps:
    redis = make_redis(settings)
    return Deps(
        repo=Repository(Dynamo(make_client(settings), settings.table_name)),
        jobs=JobQueue(redis, settings),
        redis=redis,
        settings=settings,
    )


def get_app() -> falcon.App[falcon.Request, falcon.Response]:
    """Production entry: settings read once from the environment."""
    return create_app(deps_from(Settings.from_env()))
