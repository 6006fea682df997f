"""A cluster's network on a Docker host, and how a container is attached and published.

Each cluster gets one user-defined bridge network per host, `corral-net-<cluster id>`:
its containers resolve each other by container name and by their user's name (when it
is a valid DNS label); Docker's inter-network isolation (iptables) keeps every other
cluster's containers out. The network is made by the first container that needs it;
the jobs of one worker process make it one at a time (a lock per engine and cluster:
a container made on a duplicate would keep it alive, and the engine then refuses to
start containers on a name that matches two networks); two made at once by two worker
processes leave duplicates of one name, and every user keeps the oldest and removes
the others. It is removed when the cluster's last container on the host goes.
"""

from __future__ import annotations

import re
import threading
from collections import defaultdict
from contextlib import suppress
from typing import Any

import docker.errors

from shared.allocations import Allocation
from shared.runtime import LABEL_CLUSTER, LABEL_MANAGED, cluster_network

PROTOCOLS = ("tcp", "udp")
_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")

# (engine, cluster) -> the lock its network is made under in this process.
_making: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)


def ensure(api: Any, cluster_id: str) -> str:
    """The id of the cluster's network, made if missing."""
    with _making[(str(api.base_url), cluster_id)]:
        return _ensure(api, cluster_id)


def _ensure(api: Any, cluster_id: str) -> str:
    name = cluster_network(cluster_id)
    found = _named(api, name)
    if not found:
        try:
            api.create_network(
                name,
                driver="bridge",
                check_duplicate=True,
                labels={LABEL_MANAGED: "true", LABEL_CLUSTER: cluster_id},
            )
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # another creator was first: use theirs
                raise
        found = _named(api, name)
        if not found:
            raise docker.errors.NotFound(f"network {name} vanished while made")
    oldest, *duplicates = sorted(found, key=lambda n: (str(n.get("Created", "")), n["Id"]))
    for duplicate in duplicates:
        with suppress(docker.errors.APIError):
            api.remove_network(duplicate["Id"])
    return str(oldest["Id"])


def drop_if_unused(api: Any, cluster_id: str) -> None:
    """Remove the cluster's network once no container of the cluster is on the host
    (created, running or stopped); one still in use stays (the engine refuses)."""
    remaining = api.containers(all=True, filters={"label": f"{LABEL_CLUSTER}={cluster_id}"})
    if remaining:
        return
    for network in _named(api, cluster_network(cluster_id)):
        with suppress(docker.errors.APIError):
            api.remove_network(network["Id"])


def attachment(api: Any, network_id: str, user_name: str) -> Any:
    """The networking config that attaches a new container to its cluster's network,
    reachable there by its user's name too when that name is a DNS label."""
    alias = user_name.lower()
    aliases = [alias] if _DNS_LABEL.match(alias) else None
    return api.create_networking_config({network_id: api.create_endpoint_config(aliases=aliases)})


def exposed_ports(allocations: tuple[Allocation, ...]) -> list[tuple[int, str]] | None:
    return [(a.container_port, p) for a in allocations for p in PROTOCOLS] or None


def port_bindings(allocations: tuple[Allocation, ...]) -> dict[str, int] | None:
    """Each allocation published on every address of the host, tcp and udp."""
    return {f"{a.container_port}/{p}": a.port for a in allocations for p in PROTOCOLS} or None


def _named(api: Any, name: str) -> list[dict[str, Any]]:
    """The networks called exactly `name` (the engine's filter matches parts of names)."""
    return [n for n in api.networks(names=[name]) if n.get("Name") == name]
