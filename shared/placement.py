"""Choosing a host for a workload: a ready host that runs its engine and has room,
best fit first (the fewest free resources that still fit)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from shared.allocations import DEFAULT_PORT_RANGE, PortRange, no_free_ports, range_size
from shared.capacity import Resources, shortfall
from shared.errors import NoHostAvailable
from shared.models import DriverKind, Engine, Host, HostStatus

# Host dimensions that hosts actually limit; the rest are pooled per cluster only.
HOST_DIMENSIONS = ("cpu_centi", "ram_mb", "storage_mb")


def allocated_range(host: Host) -> PortRange | None:
    """The range Corral's table hands the host's ports out of: a Docker host's (the
    default one unless its operator gave one); None for a VM host, whose QEMU driver
    picks its forwarded ports itself."""
    if host.driver != DriverKind.DOCKER:
        return None
    return host.port_range or DEFAULT_PORT_RANGE


def free_ports(host: Host) -> int:
    """How many ports of its range no workload holds (0 when the table does not count)."""
    port_range = allocated_range(host)
    return 0 if port_range is None else range_size(port_range) - host.used.ports


def _host_view(res: Resources) -> Resources:
    return Resources(**{name: getattr(res, name) for name in HOST_DIMENSIONS})


def free_score(host: Host, needed: Resources) -> tuple[float, ...]:
    """Smaller is a tighter fit: free share of each dimension after placing."""
    shares = []
    for name in HOST_DIMENSIONS:
        cap = getattr(host.capacity, name)
        free_after = cap - getattr(host.used, name) - getattr(needed, name)
        shares.append(free_after / cap if cap else 0.0)
    return (sum(shares), host.workload_count)


def candidates(
    hosts: Iterable[Host],
    engine: Engine,
    needed: Resources,
    labels: Mapping[str, str] | None = None,
    *,
    image: str | None = None,
) -> list[Host]:
    """Hosts that can take the workload, best fit first. NoHostAvailable says why not.

    With `image`, a host whose health check recorded its images must hold that image
    (a host not checked yet, with no list, is not ruled out)."""
    needed_ports = needed.ports if engine == Engine.DOCKER else 0
    needed = _host_view(needed)
    pool = [h for h in hosts if engine in h.engines]
    if not pool:
        raise NoHostAvailable(f"No host runs the {engine.value} engine.")
    if image is not None:
        pool = [h for h in pool if not h.images or image in h.images]
        if not pool:
            raise NoHostAvailable(f"No {engine.value} host has the image {image}.")
    if labels:
        pool = [h for h in pool if all(h.labels.get(k) == v for k, v in labels.items())]
        if not pool:
            raise NoHostAvailable("No host matches the label constraints.")
    ready = [h for h in pool if h.status == HostStatus.READY]
    if not ready:
        if all(h.status == HostStatus.DRAINING for h in pool):
            raise NoHostAvailable("Every host that could take it is draining.")
        raise NoHostAvailable("No host that could take it is ready.")
    fitting = [
        h for h in ready if shortfall(_host_view(h.capacity), _host_view(h.used), needed) is None
    ]
    if not fitting:
        raise NoHostAvailable("No ready host has enough free capacity for it.")
    if needed_ports > 0:
        with_ports = [h for h in fitting if free_ports(h) >= needed_ports]
        if not with_ports:
            only, only_range = fitting[0], allocated_range(fitting[0])
            raise NoHostAvailable(
                no_free_ports(only.name, only_range, free_ports(only), needed_ports)
                if len(fitting) == 1 and only_range is not None
                else f"No ready host has {needed_ports} free port(s) left in its port range."
            )
        fitting = with_ports
    return sorted(fitting, key=lambda h: free_score(h, needed))
