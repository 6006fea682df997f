"""Environments (003): a named group of VMs of one cluster, created together with shared
ssh keys and one lifetime. Plain data and decisions, no I/O.

An env's VMs are ordinary workloads (engine qemu) of its cluster: the tenant API powers,
resizes and deletes them one by one, the expiry sweeps reap them at `expires_at`. The
env record keeps what was asked and which VMs it made; its status is read from them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from shared.capacity import Resources
from shared.errors import NoHostAvailable
from shared.models import Engine, Host, Workload
from shared.placement import candidates
from shared.states import WorkloadStatus


class EnvStatus(StrEnum):
    """What the record holds; the status shown is derived (see `shown_status`)."""

    ACTIVE = "active"
    DELETING = "deleting"


@dataclass(frozen=True)
class Env:
    id: str
    cluster_id: str
    owner: str
    ssh_keys: tuple[str, ...]
    lifetime: int
    vm_ids: tuple[str, ...]
    status: EnvStatus
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    version: int = 1


def shown_status(env: Env, vms: Sequence[Workload]) -> str:
    """One word for the env from its VMs: deleted or expired once every VM is gone,
    deleting, provisioning or error while any VM is, running or stopped when all agree,
    else mixed."""
    live = [w for w in vms if not w.status.is_gone]
    if not live:
        if env.status == EnvStatus.DELETING:
            return "deleted"
        expired = vms and all(w.status == WorkloadStatus.EXPIRED for w in vms)
        return "expired" if expired else "deleted"
    statuses = {w.status for w in live}
    for status in (WorkloadStatus.DELETING, WorkloadStatus.PROVISIONING, WorkloadStatus.ERROR):
        if status in statuses:
            return status.value
    if env.status == EnvStatus.DELETING:
        return "deleting"
    if len(statuses) == 1:
        return next(iter(statuses)).value
    return "mixed"


@dataclass(frozen=True)
class VmNeed:
    """What one VM of an env asks of a host."""

    index: int
    resources: Resources
    image: str


def place_all(hosts: Iterable[Host], needs: Sequence[VmNeed]) -> list[Host]:
    """A host for every VM (in the order of `needs`), or NoHostAvailable naming the VM
    that does not fit and why. Best fit, largest VMs first; each placement counts
    against its host for the next ones, so the env's own VMs never overfill a host.

    The hosts returned are the records as read (the transaction conditions on those)."""
    by_id = {h.id: h for h in hosts}
    planned = dict(by_id)  # host id -> the host with this env's VMs so far added
    chosen: dict[int, str] = {}
    largest_first = sorted(
        needs,
        key=lambda n: (n.resources.ram_mb, n.resources.cpu_centi, n.resources.storage_mb),
        reverse=True,
    )
    for need in largest_first:
        try:
            best = candidates(planned.values(), Engine.QEMU, need.resources, image=need.image)[0]
        except NoHostAvailable as exc:
            raise NoHostAvailable(
                f"VM {need.index} (vms[{need.index}]) cannot be placed: {exc.message}"
            ) from exc
        chosen[need.index] = best.id
        planned[best.id] = replace(
            best, used=best.used + need.resources, workload_count=best.workload_count + 1
        )
    return [by_id[chosen[need.index]] for need in needs]
