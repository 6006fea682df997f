"""Request bodies of the reference documents' own paths (handlers/compat/), strict like
every other body."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from shared.admin_requests import HostCapacity, HostKey, Label, Pem, PortRange
from shared.requests import Name, Strict

User = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_-]{0,31}$")]


class LoginRequest(Strict):
    """004's POST /api/auth/login."""

    api_key: Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class InstanceCreate(Strict):
    """002's POST /api/instances: both fields optional."""

    name: Name | None = None
    region: Label | None = None


class HostRegister(Strict):
    """003's POST /api/hosts (`addr`) and what Corral needs besides."""

    addr: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    name: Name | None = None
    user: User = "root"
    ssh_private_key: Pem | None = None
    ssh_host_key: HostKey | None = None
    trust_on_first_use: bool = False
    capacity: HostCapacity | None = None
    labels: Annotated[dict[Label, Label], Field(max_length=64)] = {}
    port_range: PortRange | None = None
