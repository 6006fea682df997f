"""The Falcon app factory. gunicorn and the Lambda entry both use it."""

from __future__ import annotations

import falcon

from handlers import errors
from handlers.admin.clusters import ClusterCollection, ClusterItem, ClusterKeyCollection
from handlers.admin.eggs import EggCollection as AdminEggCollection
from handlers.admin.eggs import EggItem as AdminEggItem
from handlers.admin.hosts import HostCollection, HostItem
from handlers.auth import Authenticator, AuthMiddleware
from handlers.deps import Deps
from handlers.health import HealthResource
from handlers.public.cluster import CapacityResource, ClusterResource, EggCollection
from handlers.public.containers import ContainerCollection, ContainerItem, ContainerPower
from handlers.public.operations import OperationItem, OperationWait
from handlers.workloads import WorkloadService
from infra.dynamo import Dynamo, make_client
from infra.queue import JobQueue, make_redis
from infra.repository import Repository
from shared.settings import Settings

PUBLIC_BASE = "/api/public/clusters/v1"
ADMIN_BASE = "/api/v1"


def create_app(deps: Deps) -> falcon.App:
    middleware: list[object] = [AuthMiddleware(Authenticator(deps))]
    if deps.settings.cors_origins:
        middleware.insert(0, falcon.CORSMiddleware(allow_origins=list(deps.settings.cors_origins)))
    app = falcon.App(middleware=middleware)
    app.req_options.strip_url_path_trailing_slash = True
    errors.register(app)

    workloads = WorkloadService(deps)
    app.add_route("/health", HealthResource(deps))

    app.add_route(f"{PUBLIC_BASE}/cluster", ClusterResource(deps))
    app.add_route(f"{PUBLIC_BASE}/capacity", CapacityResource(deps))
    app.add_route(f"{PUBLIC_BASE}/eggs", EggCollection(deps))
    app.add_route(f"{PUBLIC_BASE}/containers", ContainerCollection(deps, workloads))
    app.add_route(f"{PUBLIC_BASE}/containers/{{container_id}}", ContainerItem(deps, workloads))
    app.add_route(
        f"{PUBLIC_BASE}/containers/{{container_id}}/power", ContainerPower(deps, workloads)
    )
    app.add_route(f"{PUBLIC_BASE}/operations/{{operation_id}}", OperationItem(deps))
    app.add_route(f"{PUBLIC_BASE}/operations/{{operation_id}}/wait", OperationWait(deps))

    app.add_route(f"{ADMIN_BASE}/clusters", ClusterCollection(deps))
    app.add_route(f"{ADMIN_BASE}/clusters/{{cluster_id}}", ClusterItem(deps))
    app.add_route(f"{ADMIN_BASE}/clusters/{{cluster_id}}/keys", ClusterKeyCollection(deps))
    app.add_route(f"{ADMIN_BASE}/eggs", AdminEggCollection(deps))
    app.add_route(f"{ADMIN_BASE}/eggs/{{egg_id}}", AdminEggItem(deps))
    hosts, host = HostCollection(deps), HostItem(deps)
    for noun in ("hosts", "nodes"):
        app.add_route(f"{ADMIN_BASE}/{noun}", hosts)
        app.add_route(f"{ADMIN_BASE}/{noun}/{{host_id}}", host)
    return app


def deps_from(settings: Settings) -> Deps:
    redis = make_redis(settings)
    return Deps(
        repo=Repository(Dynamo(make_client(settings), settings.table_name)),
        jobs=JobQueue(redis, settings),
        redis=redis,
        settings=settings,
    )


def get_app() -> falcon.App:
    """Production entry: settings read once from the environment."""
    return create_app(deps_from(Settings.from_env()))
