"""Operator request bodies for environments: 003's CreateEnvReq and VmSpec, strict like
every other body.

Corral's one addition is `cluster_id`: an environment belongs to a cluster, its VMs are
that cluster's workloads and count against its plan. Left out (as 003's clients do), it
is the platform's `default_cluster_id`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints

from shared.requests import (
    GuestPorts,
    Id,
    Lifetime,
    RamMb,
    SshKeys,
    StorageMb,
    Strict,
    visible_text,
)
from shared.vm import is_image_name

# What 003 names; Corral runs qemu (the others are refused naming what is available).
ENGINES_003 = ("qemu", "firecracker", "docker", "bhyve", "jail")
DEFAULT_LIFETIME = 6 * 3600
# One DynamoDB transaction writes the env, each VM and its operation, the cluster's
# counters and each host's (2 + 3 * 32 = 98), the env's event (1; its number is
# reserved before, outside the transaction) and an Idempotency-Key's claim (1): all
# 100 items a transaction may hold.
MAX_VMS_PER_ENV = 32

EnvId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


def _image_name(value: str) -> str:
    if not is_image_name(value):
        raise ValueError("must be an image file name (letters, digits, . _ + -)")
    return value


Owner = Annotated[str, StringConstraints(max_length=128), AfterValidator(visible_text)]
ImageName = Annotated[
    str, StringConstraints(min_length=1, max_length=128), AfterValidator(_image_name)
]


class VmSpec(Strict):
    """One VM of an environment, with 003's defaults."""

    image: ImageName
    engine: Annotated[str, StringConstraints(min_length=1, max_length=32)] = "qemu"
    cpu: Annotated[int, Field(ge=1, le=256)] = 2
    mem: Annotated[RamMb, Field(ge=16)] = 1024
    disk: Annotated[StorageMb, Field(ge=1)] = 40960
    ports: GuestPorts = []
    deny_outgoing: bool = False


class CreateEnvReq(Strict):
    """POST /api/v1/envs."""

    id: EnvId
    cluster_id: Id | None = None
    owner: Owner = ""
    ssh_keys: SshKeys
    vms: Annotated[list[VmSpec], Field(min_length=1, max_length=MAX_VMS_PER_ENV)]
    lifetime: Lifetime = DEFAULT_LIFETIME
