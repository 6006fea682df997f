"""Operator request bodies (strict, like the tenant ones)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from shared.models import DriverKind, Engine
from shared.requests import (
    Cores,
    Id,
    Io,
    Name,
    RamMb,
    SmallCount,
    StorageMb,
    Strict,
)

NonNegative = Annotated[int, Field(ge=0)]
Text = Annotated[str, StringConstraints(max_length=4096)]
Label = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:/-]+$")
]


class PlanLimits(Strict):
    name: Name = "custom"
    cpu_cores: Annotated[Cores, Field(ge=0)] = 0
    ram_mb: Annotated[RamMb, Field(ge=0)] = 0
    storage_mb: Annotated[StorageMb, Field(ge=0)] = 0
    io: Annotated[int, Field(ge=0, le=1_000_000)] = 0
    ports: Annotated[int, Field(ge=0, le=65535)] = 0
    databases: Annotated[int, Field(ge=0, le=100_000)] = 0
    backups: Annotated[int, Field(ge=0, le=100_000)] = 0
    containers: Annotated[int, Field(ge=0, le=100_000)] = 0


class ClusterCreate(Strict):
    name: Name
    plan: PlanLimits
    egg_ids: Annotated[list[Id], Field(max_length=200)] = []


class KeyCreate(Strict):
    name: Name = "default"


class EggResources(Strict):
    cpu_cores: Annotated[Cores, Field(ge=0)] | None = None
    ram_mb: Annotated[RamMb, Field(ge=0)] | None = None
    storage_mb: Annotated[StorageMb, Field(ge=0)] | None = None
    io: Annotated[Io, Field(ge=0)] | None = None
    ports: Annotated[SmallCount, Field(ge=0)] | None = None
    databases: Annotated[SmallCount, Field(ge=0)] | None = None
    backups: Annotated[SmallCount, Field(ge=0)] | None = None


class EggCreate(Strict):
    name: Name
    description: Text = ""
    engine: Engine = Engine.DOCKER
    image: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    command: Annotated[list[Text], Field(max_length=64)] | None = None
    environment: Annotated[dict[Label, Text], Field(max_length=128)] = {}
    minimum: EggResources = EggResources()
    defaults: EggResources = EggResources()
    stop_timeout: Annotated[int, Field(ge=0, le=3600)] = 10


class HostCapacity(Strict):
    cpu_cores: Annotated[Cores, Field(gt=0)]
    ram_mb: Annotated[RamMb, Field(gt=0)]
    storage_mb: Annotated[StorageMb, Field(ge=0)] = 0


class HostCreate(Strict):
    name: Name
    driver: DriverKind = DriverKind.DOCKER
    address: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    engines: Annotated[list[Engine], Field(min_length=1, max_length=4)] = [Engine.DOCKER]
    capacity: HostCapacity
    labels: Annotated[dict[Label, Label], Field(max_length=64)] = {}
    tls: Annotated[
        dict[
            Annotated[str, StringConstraints(pattern=r"^(ca_cert|client_cert|client_key)$")],
            Annotated[str, StringConstraints(max_length=16384)],
        ],
        Field(max_length=3),
    ] = {}
