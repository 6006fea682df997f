"""Pure decisions about workloads and VMs: what a request asks for, whether it may."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.capacity import RESOURCE_FIELDS, Resources, api_name, shortfall, shortfall_message
from shared.errors import (
    BelowMinimum,
    CapacityExceeded,
    ContainerLimitReached,
    EggNotAllowed,
    InvalidCluster,
    InvalidInput,
    NotFound,
)
from shared.models import Cluster, ClusterStatus, Egg, Engine, Plan
from shared.vm import GUEST_SSH_PORT, WorkloadVm

# Floors no egg can lower: Docker refuses less than 6 MiB of memory; a workload needs
# some CPU; the rest may be zero.
ABSOLUTE_MINIMUM = Resources(cpu_centi=1, ram_mb=6)


def require_active(cluster: Cluster) -> None:
    if cluster.status != ClusterStatus.ACTIVE:
        raise InvalidCluster(f"Cluster is {cluster.status.value}.")


def require_room(
    cluster: Cluster, growth: Resources, new_containers: int = 0, scope: str = "the pool"
) -> None:
    """Fail fast when the cluster's plan has no room for `new_containers` more containers
    and `growth` more resources: what the transaction that writes the change would refuse
    anyway (the transaction's conditions stay the guard)."""
    free = cluster.plan.max_containers - cluster.container_count
    if new_containers > max(free, 0):
        raise ContainerLimitReached(
            f"Cluster already has the maximum of {cluster.plan.max_containers} containers."
            if free <= 0
            else f"{new_containers} containers are needed; the cluster has room for {free}."
        )
    short = shortfall(cluster.plan.limits, cluster.used, growth.positive_part())
    if short:
        raise CapacityExceeded(shortfall_message(short, scope))


def require_egg_allowed(cluster: Cluster, egg_id: str) -> None:
    refusal = egg_refusal(cluster, egg_id)
    if refusal is not None:
        raise refusal


def egg_refusal(cluster: Cluster, egg_id: str) -> EggNotAllowed | None:
    """Why the cluster refuses the egg (None: it is allowed)."""
    if egg_id in cluster.egg_ids:
        return None
    return EggNotAllowed(f"Egg {egg_id} is not in the cluster whitelist.")


def egg_or_not_allowed(eggs: Mapping[str, Egg], egg_id: str) -> Egg:
    """An allowed egg id that no longer exists reads as not allowed, not as not found."""
    try:
        return eggs[egg_id]
    except KeyError:
        raise EggNotAllowed(f"Egg {egg_id} is not available.") from NotFound()


def minimum_for(egg: Egg) -> Resources:
    return Resources(
        **{
            name: max(getattr(egg.minimum, name), getattr(ABSOLUTE_MINIMUM, name))
            for name, _ in egg.minimum.items()
        }
    )


def check_minimums(resources: Resources, egg: Egg | None) -> None:
    """`resources` meet the egg's minimums and the absolute ones; only the absolute
    ones once the operator deleted the egg."""
    floor = minimum_for(egg) if egg is not None else ABSOLUTE_MINIMUM
    whose = f"for egg {egg.name}" if egg is not None else "for any container"
    for name, value in resources.items():
        if value < getattr(floor, name):
            field = api_name(name)
            shown = floor.to_api()[field]
            raise BelowMinimum(f"{field} is below its minimum of {shown} {whose}.")


def expiry_for(
    now: datetime, plan: Plan, lifetime: int | None, expires_at: datetime | None
) -> datetime | None:
    """When a workload created or renewed at `now` expires, within the plan's maximum."""
    if expires_at is not None:
        expires_at = expires_at if expires_at.tzinfo else expires_at.replace(tzinfo=UTC)
        if expires_at <= now:
            raise InvalidInput("expires_at must be in the future.")
        target: datetime | None = expires_at
    elif lifetime is not None:
        target = now + timedelta(seconds=lifetime)
    elif plan.default_lifetime:
        target = now + timedelta(seconds=plan.default_lifetime)
    else:
        target = None
    if plan.max_lifetime:
        longest = now + timedelta(seconds=plan.max_lifetime)
        if target is None:
            return longest
        if target > longest:
            raise InvalidInput(
                f"The lease may reach at most {plan.max_lifetime} seconds ahead on this plan."
            )
    return target


def resources_for_create(given: Mapping[str, Any], egg: Egg) -> Resources:
    """The egg's defaults, overridden by what the caller gave, checked against minimums."""
    unknown = set(given) - set(RESOURCE_FIELDS)
    if unknown:
        raise ValueError(f"not resource fields: {sorted(unknown)}")
    resources = egg.defaults.merged(given)
    check_minimums(resources, egg)
    return resources


# -- VMs --------------------------------------------------------------------------
# A VM is a workload whose egg's engine is qemu. What its owner asks for beyond
# resources (ssh keys, guest ports, no outbound traffic) lives in the workload's `vm`
# field; how it boots (kernel, initrd, kernel_args) lives in the egg's.


def vm_request(egg: Egg, given: Mapping[str, Any]) -> WorkloadVm | None:
    """The `vm` of a new workload from the VM options of its request (named as in a
    workload's `vm`: ssh_keys, ports, deny_outgoing); None for a container, which takes
    none of them."""
    if egg.engine != Engine.QEMU:
        if given:
            raise InvalidInput(
                "ssh_keys, guest_ports and deny_outgoing are for VMs (eggs with engine qemu); "
                f"egg {egg.name} runs {egg.engine.value} containers."
            )
        return None
    return WorkloadVm(
        image=egg.image,
        ssh_keys=tuple(dict.fromkeys(given.get("ssh_keys") or [])),
        ports=tuple(sorted(set(given.get("ports") or []))),
        deny_outgoing=bool(given.get("deny_outgoing", False)),
    )


def forwarded_count(guest_ports: Iterable[int]) -> int:
    """How many host ports a VM takes: one per exposed guest port, 22 included."""
    return len({GUEST_SSH_PORT, *guest_ports})


def vm_resources(resources: Resources, vm: WorkloadVm) -> Resources:
    """A VM is counted at least one `ports` unit per forwarded host port."""
    return replace(resources, ports=max(resources.ports, forwarded_count(vm.ports)))
