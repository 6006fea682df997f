"""Allocations: the host ports a container holds, as Pterodactyl hands them out.

A container asking for `ports: N` holds N distinct ports of its host's `port_range`.
Each is published on the host's `public_address` as the same port number inside the
container (tcp and udp), unless its egg declares `container_ports`: then the egg's
fixed ports are mapped to the allocations in order. The first allocation is the
primary one, told to the process as `SERVER_IP` / `SERVER_PORT`.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shared.errors import NoHostAvailable

# Where a Docker host's allocations come from unless its operator says otherwise.
DEFAULT_PORT_RANGE = (20000, 29999)
# What a host without a public_address is reached on: its engine is on this machine.
LOCAL_ADDRESS = "127.0.0.1"

PortRange = tuple[int, int]


@dataclass(frozen=True)
class Allocation:
    ip: str
    port: int  # on the host
    container_port: int  # inside the container
    primary: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "ip": self.ip,
            "port": self.port,
            "primary": self.primary,
            "container_port": self.container_port,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Allocation:
        return cls(
            ip=str(data["ip"]),
            port=int(data["port"]),
            container_port=int(data["container_port"]),
            primary=bool(data["primary"]),
        )


def range_size(port_range: PortRange) -> int:
    return port_range[1] - port_range[0] + 1


def ranges_overlap(a: PortRange, b: PortRange) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def pick_ports(
    port_range: PortRange,
    held: Collection[int],
    count: int,
    host_name: str,
    rng: random.Random | None = None,
) -> list[int]:
    """`count` ports of `port_range` that nobody holds, drawn at random (so that racing
    placements on one host rarely want the same ones). NoHostAvailable when too few
    are free."""
    if count <= 0:
        return []
    free = [p for p in range(port_range[0], port_range[1] + 1) if p not in held]
    if len(free) < count:
        raise NoHostAvailable(no_free_ports(host_name, port_range, len(free), count))
    return (rng or random).sample(free, count)


def no_free_ports(host_name: str, port_range: PortRange, free: int, wanted: int) -> str:
    low, high = port_range
    return (
        f"Host {host_name} has {free} free port(s) left in its range {low}-{high}; "
        f"the container needs {wanted}."
    )


def allocations_for(
    ip: str, ports: Sequence[int], container_ports: Sequence[int]
) -> tuple[Allocation, ...]:
    """Allocations of `ports` in order, the first primary; an egg's `container_ports`
    are mapped to them in order, the rest are published as the same number."""
    return tuple(
        Allocation(
            ip=ip,
            port=port,
            container_port=container_ports[i] if i < len(container_ports) else port,
            primary=i == 0,
        )
        for i, port in enumerate(ports)
    )


def environment(allocations: Sequence[Allocation]) -> dict[str, str]:
    """What the process is told of its allocations (nothing when it holds none)."""
    if not allocations:
        return {}
    primary = allocations[0]
    return {
        "SERVER_IP": primary.ip,
        "SERVER_PORT": str(primary.container_port),
        "SERVER_PORTS": ",".join(str(a.container_port) for a in allocations),
    }
