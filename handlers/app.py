"""The Falcon app factory. gunicorn and the Lambda entry both use it.

The route table names each resource by where it lives (`Later`, handlers.routing):
its module is imported, and the resource built, when its route is first hit, so
the Lambda entry's cold start loads only the routes it serves. Importing this
module loads falcon alone; building the app, the middleware and the table client."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import falcon

from handlers.routing import Later, LazyRouter

if TYPE_CHECKING:
    from handlers.auth import Authenticator
    from services.deps import Deps
    from shared.settings import Settings

PUBLIC_BASE = "/api/public/clusters/v1"
ADMIN_BASE = "/api/v1"


def create_app(deps: Deps, *, metrics: bool = False) -> falcon.App[falcon.Request, falcon.Response]:
    """The app. With `metrics`, requests are counted for GET /metrics (prometheus_client:
    gunicorn's app has them, the Lambda entry's does not)."""
    from handlers import errors
    from handlers.auth import Authenticator, AuthMiddleware
    from handlers.compat import add_routes as add_compat_routes
    from handlers.idempotency import IdempotencyMiddleware
    from handlers.telemetry import Recorder, Telemetry

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
    app = falcon.App(middleware=middleware, router=LazyRouter())
    app.req_options.strip_url_path_trailing_slash = True
    errors.register(app)

    workloads = Later("services.workloads:WorkloadService", deps)
    app.add_route("/health", Later("handlers.health:HealthResource", deps))
    dashboard = Later("handlers.web:Dashboard")
    app.add_route("/", dashboard)
    app.add_route("/web/{name}", dashboard)

    public = "handlers.public"
    app.add_route(f"{PUBLIC_BASE}/cluster", Later(f"{public}.cluster:ClusterResource", deps))
    app.add_route(f"{PUBLIC_BASE}/capacity", Later(f"{public}.cluster:CapacityResource", deps))
    app.add_route(f"{PUBLIC_BASE}/eggs", Later(f"{public}.cluster:EggCollection", deps))
    containers = f"{public}.containers"
    app.add_route(
        f"{PUBLIC_BASE}/containers", Later(f"{containers}:ContainerCollection", deps, workloads)
    )
    item = f"{PUBLIC_BASE}/containers/{{container_id}}"
    app.add_route(item, Later(f"{containers}:ContainerItem", deps, workloads))
    app.add_route(f"{item}/power", Later(f"{containers}:ContainerPower", deps, workloads))
    app.add_route(f"{item}/lease", Later(f"{containers}:ContainerLease", deps, workloads))
    app.add_route(f"{item}/health", Later(f"{public}.observe:ContainerHealth", deps, workloads))
    app.add_route(f"{item}/logs", Later(f"{public}.observe:ContainerLogs", deps, workloads))
    tenant_databases = Later("services.databases:TenantDatabaseService", deps)
    databases = f"{public}.databases"
    app.add_route(
        f"{item}/databases",
        Later(f"{databases}:ContainerDatabaseCollection", deps, tenant_databases),
    )
    database = f"{item}/databases/{{database_id}}"
    app.add_route(database, Later(f"{databases}:ContainerDatabaseItem", deps, tenant_databases))
    app.add_route(
        f"{database}/rotate-password",
        Later(f"{databases}:ContainerDatabaseRotate", deps, tenant_databases),
    )
    backups = Later("services.backups:BackupService", deps)
    backup = f"{item}/backups/{{backup_id}}"
    app.add_route(f"{item}/backups", Later(f"{public}.backups:BackupCollection", deps, backups))
    app.add_route(backup, Later(f"{public}.backups:BackupItem", deps, backups))
    app.add_route(f"{backup}/restore", Later(f"{public}.backups:BackupRestore", deps, backups))
    app.add_route(f"{backup}/download", Later(f"{public}.backups:BackupDownload", deps, backups))
    app.add_route(f"{PUBLIC_BASE}/keys", Later(f"{public}.keys:KeyCollection", deps))
    app.add_route(f"{PUBLIC_BASE}/keys/current", Later(f"{public}.keys:CurrentKey", deps))
    operations = f"{public}.operations"
    operation = f"{PUBLIC_BASE}/operations/{{operation_id}}"
    app.add_route(f"{PUBLIC_BASE}/operations", Later(f"{operations}:OperationCollection", deps))
    app.add_route(operation, Later(f"{operations}:OperationItem", deps))
    app.add_route(f"{operation}/wait", Later(f"{operations}:OperationWait", deps))
    app.add_route(f"{PUBLIC_BASE}/events", Later("handlers.events:TenantEvents", deps))
    _add_webhook_routes(app, deps, PUBLIC_BASE, tenant=True)

    _add_admin_routes(app, deps, authenticator, workloads)
    version = deps.settings.version
    app.add_route("/openapi.json", Later("handlers.reference:OpenApiDocument", app, version))
    app.add_route("/docs", Later("handlers.reference:DocsPage"))
    app.add_route("/docs/{name}", Later("handlers.reference:DocsAsset"))
    if metrics:
        app.add_route("/metrics", Later("handlers.telemetry:MetricsResource", deps))
    add_compat_routes(app, deps, authenticator, workloads)
    return app


def _add_admin_routes(
    app: falcon.App[falcon.Request, falcon.Response],
    deps: Deps,
    authenticator: Authenticator,
    workloads: Later,
) -> None:
    from handlers.compat import BASE_PATHS as COMPAT_BASE_PATHS

    base, admin = ADMIN_BASE, "handlers.admin"
    clusters = f"{admin}.clusters"
    cluster_service = Later("services.clusters:ClusterService", deps)
    cluster = f"{base}/clusters/{{cluster_id}}"
    app.add_route(f"{base}/clusters", Later(f"{clusters}:ClusterCollection", deps, cluster_service))
    app.add_route(cluster, Later(f"{clusters}:ClusterItem", deps, cluster_service))
    for action in ("suspend", "reactivate", "expire"):  # ClusterStatusChange.TARGETS
        change = Later(
            f"{clusters}:ClusterStatusChange", deps, cluster_service, authenticator, action
        )
        app.add_route(f"{cluster}/{action}", change)
    app.add_route(f"{cluster}/keys", Later(f"{clusters}:ClusterKeyCollection", deps))
    app.add_route(f"{cluster}/containers", Later(f"{clusters}:ClusterContainerCollection", deps))
    app.add_route(
        f"{cluster}/containers/{{container_id}}", Later(f"{clusters}:ClusterContainerItem", deps)
    )
    app.add_route(
        f"{cluster}/operations/{{operation_id}}", Later(f"{clusters}:ClusterOperationItem", deps)
    )
    app.add_route(
        f"{cluster}/keys/{{key_id}}", Later(f"{clusters}:ClusterKeyItem", deps, authenticator)
    )
    eggs = Later("services.eggs:EggService", deps)
    app.add_route(f"{base}/eggs", Later(f"{admin}.eggs:EggCollection", deps, eggs))
    app.add_route(f"{base}/eggs/{{egg_id}}", Later(f"{admin}.eggs:EggItem", deps, eggs))
    templates = f"{admin}.templates"
    template = f"{base}/templates/{{template_id}}"
    app.add_route(f"{base}/templates", Later(f"{templates}:TemplateCollection", deps))
    app.add_route(template, Later(f"{templates}:TemplateItem", deps))
    app.add_route(
        f"{template}/instantiate", Later(f"{templates}:TemplateInstantiate", deps, workloads)
    )
    host_service = Later("services.hosts:HostService", deps)
    hosts = Later(f"{admin}.hosts:HostCollection", deps, host_service)
    host = Later(f"{admin}.hosts:HostItem", deps, host_service)
    drain = Later(f"{admin}.hosts:HostDrain", host_service, draining=True)
    undrain = Later(f"{admin}.hosts:HostDrain", host_service, draining=False)
    for noun in ("hosts", "nodes"):
        app.add_route(f"{base}/{noun}", hosts)
        app.add_route(f"{base}/{noun}/{{host_id}}", host)
        app.add_route(f"{base}/{noun}/{{host_id}}/drain", drain)
        app.add_route(f"{base}/{noun}/{{host_id}}/undrain", undrain)
    app.add_route(f"{base}/status", Later(f"{admin}.fleet:FleetStatus", deps))
    app.add_route(f"{base}/stats", Later(f"{admin}.fleet:FleetStats", deps))
    images = Later("services.images:ImageService", deps)
    app.add_route(f"{base}/images", Later(f"{admin}.images:ImageCollection", deps, images))
    app.add_route(f"{base}/images/pull", Later(f"{admin}.images:ImagePullResource", deps, images))
    app.add_route(
        f"{base}/operations/{{operation_id}}", Later(f"{admin}.images:FleetOperationItem", deps)
    )
    app.add_route(f"{base}/operations", Later(f"{admin}.fleet:FleetOperations", deps))
    app.add_route(f"{base}/events", Later("handlers.events:OperatorEvents", deps))
    _add_webhook_routes(app, deps, base, tenant=False)
    envs = Later("services.envs:EnvService", deps)
    env = f"{base}/envs/{{env_id}}"
    app.add_route(f"{base}/envs", Later(f"{admin}.envs:EnvCollection", deps, envs))
    app.add_route(env, Later(f"{admin}.envs:EnvItem", deps, envs))
    app.add_route(f"{env}/lease", Later(f"{admin}.envs:EnvLease", deps, envs))
    for action in ("stop", "start"):  # EnvPower.ACTIONS
        app.add_route(f"{env}/{action}", Later(f"{admin}.envs:EnvPower", deps, envs, action))
    app.add_route(f"{base}/vms/{{vm_id}}", Later(f"{admin}.envs:VmItem", deps))
    platform = Later("services.platform:PlatformService", deps)
    app.add_route(
        f"{base}/platform/settings",
        Later(f"{admin}.platform:PlatformSettingsResource", deps, platform),
    )
    base_paths = {"public": PUBLIC_BASE, "admin": ADMIN_BASE, **COMPAT_BASE_PATHS}
    app.add_route(
        f"{base}/platform/config", Later(f"{admin}.platform:PlatformConfig", deps, base_paths)
    )
    database_hosts = Later("services.databases:DatabaseHostService", deps)
    database_host = f"{base}/database-hosts/{{host_id}}"
    app.add_route(
        f"{base}/database-hosts",
        Later(f"{admin}.databases:DatabaseHostCollection", deps, database_hosts),
    )
    app.add_route(database_host, Later(f"{admin}.databases:DatabaseHostItem", deps, database_hosts))
    databases = Later("services.databases:DatabaseService", deps)
    managed = f"{base}/managed-databases/{{database_id}}"
    app.add_route(
        f"{base}/managed-databases",
        Later(f"{admin}.databases:ManagedDatabaseCollection", deps, databases),
    )
    app.add_route(managed, Later(f"{admin}.databases:ManagedDatabaseItem", deps, databases))
    app.add_route(
        f"{managed}/bind", Later(f"{admin}.databases:ManagedDatabaseBind", deps, databases)
    )


def _add_webhook_routes(
    app: falcon.App[falcon.Request, falcon.Response], deps: Deps, base: str, *, tenant: bool
) -> None:
    service = Later("services.webhooks:WebhookService", deps)
    webhook = f"{base}/webhooks/{{webhook_id}}"
    app.add_route(
        f"{base}/webhooks",
        Later("handlers.webhooks:WebhookCollection", deps, service, tenant=tenant),
    )
    app.add_route(webhook, Later("handlers.webhooks:WebhookItem", deps, tenant=tenant))
    app.add_route(
        f"{webhook}/deliveries", Later("handlers.webhooks:WebhookDeliveries", deps, tenant=tenant)
    )


def deps_from(settings: Settings) -> Deps:
    from infra.queue import JobQueue, make_redis
    from infra.table.dynamo import Dynamo, make_client
    from infra.table.repository import Repository
    from services.deps import Deps

    redis = make_redis(settings)
    return Deps(
        repo=Repository(Dynamo(make_client(settings), settings.table_name)),
        jobs=JobQueue(redis, settings),
        redis=redis,
        settings=settings,
    )


def get_app() -> falcon.App[falcon.Request, falcon.Response]:
    """Production entry: settings read once from the environment."""
    from shared.settings import Settings

    return create_app(deps_from(Settings.from_env()))
