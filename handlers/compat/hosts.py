"""003's POST /api/hosts {"addr": "host:port"}: an SSH (QEMU) host registered by address.

003's agents need nothing else; Corral logs in over SSH and pins the host's key, so it
also needs `ssh_private_key`, `capacity` and `ssh_host_key`. The host key may instead be
taken from the host itself when the operator says so for this call
(`"trust_on_first_use": true`, or `?trust_on_first_use=true`): a worker reads it (the
handler imports no SSH library) while the request waits. Without what it needs the call
answers 400 naming the missing fields. Registration itself is HostService.register, as
for POST /api/v1/hosts.
"""

from __future__ import annotations

import json
import re

import falcon

from handlers import views
from handlers.admin.hosts import HostCollection
from handlers.body import body_as
from infra.host_calls import HostCalls
from infra.jobs import SCAN_HOST_KEY
from services.deps import Deps
from services.hosts import HostService
from shared.admin_requests import HostCreate
from shared.compat_requests import HostRegister
from shared.errors import HostTimeout, HostUnreachable, InvalidInput
from shared.models import DriverKind, Engine
from shared.requests import parse

SCAN_TIMEOUT_SECONDS = 10.0
_ADDR = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(?P<port>\d{1,5}))?$")


def split_addr(addr: str) -> tuple[str, int]:
    match = _ADDR.fullmatch(addr)
    port = int(match.group("port") or 22) if match else 0
    if match is None or not 1 <= port <= 65535:
        raise InvalidInput("addr must be host:port (an IPv6 address in brackets).")
    return match.group("host"), port


class HostRegistration(HostCollection):
    """GET /api/hosts (the operator host list) and 003's POST /api/hosts."""

    def __init__(self, deps: Deps, hosts: HostService, calls: HostCalls | None = None) -> None:
        super().__init__(deps, hosts)
        self._calls = calls or HostCalls(deps.redis, deps.settings)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = body_as(req, HostRegister, self._deps.settings.max_body_bytes)
        trust = body.trust_on_first_use or bool(
            req.get_param_as_bool("trust_on_first_use", default=False)
        )
        host, port = split_addr(body.addr)
        missing = [
            name
            for name, given in (
                ("ssh_private_key", body.ssh_private_key),
                ("capacity", body.capacity),
                ("ssh_host_key", body.ssh_host_key or trust),
            )
            if not given
        ]
        if missing:
            raise InvalidInput(
                f"Missing fields: {', '.join(missing)}. Corral logs in to a VM host over SSH "
                'with a key it pins; give ssh_host_key, or "trust_on_first_use": true to '
                "take it from the host now.",
                details=[
                    {"loc": f"body.{name}", "type": "missing", "message": "Field required"}
                    for name in missing
                ],
            )
        host_key = body.ssh_host_key or self._scan(host, port)
        create = parse(
            HostCreate,
            json.dumps(
                {
                    "name": body.name or body.addr[:64],
                    "driver": DriverKind.SSH.value,
                    "address": f"ssh://{body.user}@{host}:{port}",
                    "engines": [Engine.QEMU.value],
                    "capacity": body.capacity.model_dump() if body.capacity else None,
                    "labels": body.labels,
                    "ssh_host_key": host_key,
                    "ssh_private_key": body.ssh_private_key,
                    "port_range": body.port_range,
                }
            ),
        )
        registered = self._hosts.register(create)
        resp.status = falcon.HTTP_201
        resp.media = views.host(registered)

    def _scan(self, host: str, port: int) -> str:
        try:
            answer = self._calls.call(SCAN_HOST_KEY, [host.strip("[]"), port], SCAN_TIMEOUT_SECONDS)
        except HostTimeout:
            raise HostTimeout("No worker read the host's SSH key in time; retry.") from None
        if "error" in answer:
            raise HostUnreachable(f"{host}:{port} did not give its SSH host key: {answer['error']}")
        return str(answer["host_key"])
