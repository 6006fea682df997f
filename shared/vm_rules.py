"""Decisions about VMs shared by the containers API and environments. No I/O.

A VM is a workload whose egg's engine is qemu. What its owner asks for beyond
resources (ssh keys, guest ports, no outbound traffic) lives in the workload's `vm`
field; how it boots (kernel, initrd, kernel_args) lives in the egg's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from shared.capacity import Resources
from shared.errors import InvalidInput
from shared.models import Egg, Engine
from shared.vm import GUEST_SSH_PORT


def vm_request(egg: Egg, given: Mapping[str, Any]) -> dict[str, Any] | None:
    """The `vm` field of a new workload from the VM options of its request (named as in
    a workload's `vm`: ssh_keys, ports, deny_outgoing); None for a container, which
    takes none of them."""
    if egg.engine != Engine.QEMU:
        if given:
            raise InvalidInput(
                "ssh_keys, guest_ports and deny_outgoing are for VMs (eggs with engine qemu); "
                f"egg {egg.name} runs {egg.engine.value} containers."
            )
        return None
    return {
        "image": egg.image,
        "ssh_keys": list(dict.fromkeys(given.get("ssh_keys") or [])),
        "ports": sorted(set(given.get("ports") or [])),
        "deny_outgoing": bool(given.get("deny_outgoing", False)),
    }


def forwarded_count(vm: Mapping[str, Any]) -> int:
    """How many host ports the VM takes: one per exposed guest port, 22 included."""
    return len({GUEST_SSH_PORT, *vm.get("ports", [])})


def vm_resources(resources: Resources, vm: Mapping[str, Any]) -> Resources:
    """A VM is counted at least one `ports` unit per forwarded host port."""
    return replace(resources, ports=max(resources.ports, forwarded_count(vm)))
