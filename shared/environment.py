"""A container's environment: the one place that composes it, from the egg's fixed
environment, its variables (the workload's values, or the defaults), its allocations
(`SERVER_IP`, `SERVER_PORT`, `SERVER_PORTS`) and the connection variables of the
databases bound to it. Later parts win: a tenant's
variable cannot shadow what Corral sets (egg variables may not take those names)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from shared import allocations
from shared.models import Egg, Workload
from shared.variables import variable_environment


def container_environment(
    egg: Egg, workload: Workload, databases: Sequence[Mapping[str, str]] = ()
) -> dict[str, str]:
    environment = dict(egg.environment)
    environment.update(variable_environment(egg.variables, workload.environment))
    environment.update(allocations.environment(workload.allocations))
    for connection in databases:
        environment.update(connection)
    return environment
