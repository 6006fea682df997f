"""What an operator's change to a host means: registering it, draining it."""

from __future__ import annotations

from services.deps import Deps
from shared.admin_requests import HostCreate
from shared.capacity import Resources
from shared.models import Host, HostStatus


class HostService:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._repo = deps.repo

    def register(self, body: HostCreate) -> Host:
        """A new host, ready for placements; its SSH keys are kept only when both are given."""
        now = self._deps.clock()
        ssh = {}
        if body.ssh_host_key and body.ssh_private_key:
            ssh = {"host_key": body.ssh_host_key, "private_key": body.ssh_private_key}
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
            port_range=(body.port_range[0], body.port_range[1]) if body.port_range else None,
            created_at=now,
            updated_at=now,
        )
        self._repo.hosts.create(host)
        return host

    def set_draining(self, host_id: str, draining: bool) -> Host:
        """Draining: no new placements; what runs there stays."""
        host = self._repo.hosts.get(host_id)
        return self._repo.hosts.set_draining(host, draining, self._deps.clock())
