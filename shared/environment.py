"""A container's environment: the one place that composes it, from the egg's fixed
environment, its variables (the workload's values, or the defaults), its allocations
(`SERVER_IP`, `SERVER_PORT`, `SERVER_PORTS`) and the connection variables of the
databases bound to it. Later parts win: a tenant's
variable cannot shadow what Corral sets (egg variables may not take those names).
`variable_values` reads the tenant's part back from an environment so composed."""

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


def variable_values(egg: Egg, environment: Mapping[str, str]) -> dict[str, str]:
    """The values of the egg's user-editable variables in an environment that
    `container_environment` composed: a container's, read back to adopt it."""
    return {
        var.env: environment[var.env]
        for var in egg.variables
        if var.user_editable and var.env in environment
    }
