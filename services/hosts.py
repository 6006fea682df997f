"""What an operator's change to a host means: registering it, draining it, moving
where its workloads are reached (`public_address`, `port_range`)."""

from __future__ import annotations

from dataclasses import replace

from services.deps import Deps
from shared.admin_requests import HostCreate, HostUpdate
from shared.allocations import DEFAULT_PORT_RANGE, PortRange, ranges_overlap
from shared.capacity import Resources
from shared.errors import InvalidInput, PortRangeConflict
from shared.models import DriverKind, Host, HostStatus


class HostService:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._repo = deps.repo

    def register(self, body: HostCreate) -> Host:
        """A new host, ready for placements; its SSH keys are kept only when both are
        given. A Docker host without a port range gets the default one."""
        now = self._deps.clock()
        ssh = {}
        if body.ssh_host_key and body.ssh_private_key:
            ssh = {"host_key": body.ssh_host_key, "private_key": body.ssh_private_key}
        port_range = _as_range(body.port_range)
        if port_range is None and body.driver == DriverKind.DOCKER:
            port_range = DEFAULT_PORT_RANGE
        host = Host(
            id=self._deps.new_id(),
            name=body.name,
            driver=body.driver,
            address=body.address,
            engines=tuple(dict.fromkeys(body.engines)),
            capacity=Resources.from_api(body.capacity.model_dump()),
            used=Resources(),
            workload_count=0,
            status=HostStatus.READY,
            labels=dict(body.labels),
            tls=dict(body.tls),
            ssh=ssh,
            port_range=port_range,
            public_address=body.public_address,
            created_at=now,
            updated_at=now,
        )
        self._refuse_overlap(host)
        self._repo.hosts.create(host)
        return host

    def update(self, host_id: str, body: HostUpdate) -> Host:
        """Move the host's public address and/or port range. Refused when the range
        would leave out a port a workload holds, or overlap another host's range at the
        same public address; conditioned on the host as read, so a placement that took
        a port meanwhile makes it fail (conflict) rather than slip past the check."""
        if not body.model_fields_set:
            raise InvalidInput("Nothing to change: give public_address and/or port_range.")
        host = self._repo.hosts.get(host_id)
        changed = replace(
            host,
            public_address=(
                body.public_address
                if "public_address" in body.model_fields_set
                else host.public_address
            ),
            port_range=_as_range(body.port_range) or host.port_range,
        )
        if changed.port_range != host.port_range and changed.port_range is not None:
            low, high = changed.port_range
            outside = sorted(p for p in self._repo.ports.held(host.id) if not low <= p <= high)
            if outside:
                shown = ", ".join(str(p) for p in outside[:10])
                raise PortRangeConflict(
                    f"Workloads hold port(s) {shown} outside {low}-{high}: delete or resize "
                    "them first, or choose a range that keeps them."
                )
        self._refuse_overlap(changed)
        return self._repo.hosts.set_reach(host, changed, self._deps.clock())

    def set_draining(self, host_id: str, draining: bool) -> Host:
        """Draining: no new placements; what runs there stays."""
        host = self._repo.hosts.get(host_id)
        return self._repo.hosts.set_draining(host, draining, self._deps.clock())

    def _refuse_overlap(self, host: Host) -> None:
        """Two hosts reached at one address cannot hand out the same ports."""
        if host.public_address is None or host.port_range is None:
            return
        for other in self._repo.hosts.list():
            if (
                other.id != host.id
                and other.public_address == host.public_address
                and other.port_range is not None
                and ranges_overlap(other.port_range, host.port_range)
            ):
                low, high = other.port_range
                raise PortRangeConflict(
                    f"Host {other.name} at {host.public_address} already uses ports "
                    f"{low}-{high}; give this host a range that does not overlap it."
                )


def _as_range(given: list[int] | None) -> PortRange | None:
    return (given[0], given[1]) if given else None
