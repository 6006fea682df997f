"""The reference documents' own paths, as thin resources over the same services:
003's controller (`/api/hosts`, `/api/envs`, `/api/vms`, `/api/images`, `/api/status`,
operator key), 002's instances (`/api/instances`, tenant key) and 004's token exchange
(`/api/auth/...`). README.md, "Compatible paths", says how each differs from its
document."""

from __future__ import annotations

from typing import TYPE_CHECKING

import falcon

from handlers.routing import Later

if TYPE_CHECKING:
    from handlers.auth import Authenticator
    from services.deps import Deps

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
    workloads: Later,
) -> None:
    """The compatible paths, their resources built on first use (handlers.routing)."""
    admin, compat = "handlers.admin", "handlers.compat"
    # 004
    app.add_route(f"{BASE}/auth/status", Later(f"{compat}.auth:AuthStatus", deps))
    app.add_route(f"{BASE}/auth/login", Later(f"{compat}.auth:AuthLogin", deps, authenticator))
    app.add_route(f"{BASE}/auth/validate", Later(f"{compat}.auth:AuthValidate", authenticator))
    # 002
    instances = f"{compat}.instances"
    instance = f"{BASE}/instances/{{instance_id}}"
    app.add_route(f"{BASE}/instances", Later(f"{instances}:InstanceCollection", deps, workloads))
    app.add_route(instance, Later(f"{instances}:InstanceItem", deps, workloads))
    for action in ("pause", "restart"):  # InstancePower.ACTIONS
        power = Later(f"{instances}:InstancePower", deps, workloads, action)
        app.add_route(f"{instance}/{action}", power)
    app.add_route(f"{instance}/health", Later(f"{instances}:InstanceHealth", deps, workloads))
    # 003
    hosts = Later("services.hosts:HostService", deps)
    app.add_route(f"{BASE}/hosts", Later(f"{compat}.hosts:HostRegistration", deps, hosts))
    app.add_route(f"{BASE}/hosts/{{host_id}}", Later(f"{admin}.hosts:HostItem", deps, hosts))
    envs = Later("services.envs:EnvService", deps)
    app.add_route(f"{BASE}/envs", Later(f"{admin}.envs:EnvCollection", deps, envs))
    app.add_route(f"{BASE}/envs/{{env_id}}", Later(f"{admin}.envs:EnvItem", deps, envs))
    for action in ("stop", "start"):  # EnvPower.ACTIONS
        power = Later(f"{admin}.envs:EnvPower", deps, envs, action)
        app.add_route(f"{BASE}/envs/{{env_id}}/{action}", power)
    app.add_route(f"{BASE}/vms/{{vm_id}}", Later(f"{admin}.envs:VmItem", deps))
    images = Later("services.images:ImageService", deps)
    app.add_route(f"{BASE}/images", Later(f"{admin}.images:ImageCollection", deps, images))
    app.add_route(f"{BASE}/status", Later(f"{admin}.fleet:FleetStatus", deps))
