"""The reference documents' own paths, as thin resources over the same services:
003's controller (`/api/hosts`, `/api/envs`, `/api/vms`, `/api/images`, `/api/status`,
operator key), 002's instances (`/api/instances`, tenant key) and 004's token exchange
(`/api/auth/...`). README.md, "Compatible paths", says how each differs from its
document."""

from __future__ import annotations

import falcon

from handlers.admin.envs import EnvCollection, EnvItem, EnvPower, VmItem
from handlers.admin.fleet import FleetStatus
from handlers.admin.hosts import HostItem
from handlers.admin.images import ImageCollection
from handlers.auth import Authenticator
from handlers.compat.auth import AuthLogin, AuthStatus, AuthValidate
from handlers.compat.hosts import HostRegistration
from handlers.compat.instances import (
    InstanceCollection,
    InstanceHealth,
    InstanceItem,
    InstancePower,
)
from services.deps import Deps
from services.envs import EnvService
from services.hosts import HostService
from services.images import ImageService
from services.workloads import WorkloadService

BASE = "/api"
BASE_PATHS = {
    "auth": f"{BASE}/auth",
    "instances": f"{BASE}/instances",
    "environments": f"{BASE}/envs",
}


def add_routes(
    app: falcon.App[falcon.Request, falcon.Response],
    deps: Deps,
    authenticator: Authenticator,
    workloads: WorkloadService,
) -> None:
    # 004
    app.add_route(f"{BASE}/auth/status", AuthStatus(deps))
    app.add_route(f"{BASE}/auth/login", AuthLogin(deps, authenticator))
    app.add_route(f"{BASE}/auth/validate", AuthValidate(authenticator))
    # 002
    app.add_route(f"{BASE}/instances", InstanceCollection(deps, workloads))
    app.add_route(f"{BASE}/instances/{{instance_id}}", InstanceItem(deps, workloads))
    for action in InstancePower.ACTIONS:
        app.add_route(
            f"{BASE}/instances/{{instance_id}}/{action}", InstancePower(deps, workloads, action)
        )
    app.add_route(f"{BASE}/instances/{{instance_id}}/health", InstanceHealth(deps, workloads))
    # 003
    hosts = HostService(deps)
    app.add_route(f"{BASE}/hosts", HostRegistration(deps, hosts))
    app.add_route(f"{BASE}/hosts/{{host_id}}", HostItem(deps, hosts))
    envs = EnvService(deps)
    app.add_route(f"{BASE}/envs", EnvCollection(deps, envs))
    app.add_route(f"{BASE}/envs/{{env_id}}", EnvItem(deps, envs))
    for action in EnvPower.ACTIONS:
        app.add_route(f"{BASE}/envs/{{env_id}}/{action}", EnvPower(deps, envs, action))
    app.add_route(f"{BASE}/vms/{{vm_id}}", VmItem(deps))
    app.add_route(f"{BASE}/images", ImageCollection(deps, ImageService(deps)))
    app.add_route(f"{BASE}/status", FleetStatus(deps))
