"""Choosing a host for a workload: a ready host that runs its engine and has room,
best fit first (the fewest free resources that still fit)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from shared.capacity import Resources, shortfall
from shared.errors import NoHostAvailable
from shared.models import Engine, Host, HostStatus

# Host dimensions that hosts actually limit; the rest are pooled per cluster only.
HOST_DIMENSIONS = ("cpu_centi", "ram_mb", "storage_mb")


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
    return sorted(fitting, key=lambda h: free_score(h, needed))
