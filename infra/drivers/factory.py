"""Choosing a driver for a host: a dict from the host's driver kind to a builder.

Drivers import their libraries (docker, paramiko) only when built, so nothing on
the HTTP path pays for them."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from infra.drivers.base import HostDriver
from shared.models import DriverKind, Host
from shared.vm import (
    LABEL_ACCEL,
    LABEL_BASE_DIR,
    LABEL_IMAGES_DIR,
    LABEL_VM_OUTGOING,
    VM_OUTGOING_ALLOWED,
)


def _docker(host: Host) -> HostDriver:
    from infra.drivers.docker.driver import DockerDriver

    return DockerDriver(host.address, host.tls or None)


def _ssh(host: Host) -> HostDriver:
    """QEMU over SSH, with the host's pinned key, port range and folders."""
    from infra.drivers.qemu.driver import QemuDriver
    from infra.drivers.ssh.connection import SshConnection
    from shared.errors import HostError
    from shared.vm import parse_ssh_address

    try:
        where = parse_ssh_address(host.address)
    except ValueError as exc:
        raise HostError(f"Host {host.name} has an unusable address: {exc}.") from exc
    private_key, host_key = host.ssh.get("private_key"), host.ssh.get("host_key")
    if not private_key or not host_key:
        raise HostError(f"Host {host.name} has no pinned host key or no private key.")
    connection = SshConnection(where.hostname, where.port, where.username, private_key, host_key)
    options: dict[str, Any] = {}
    if host.port_range:
        options["port_range"] = range(host.port_range[0], host.port_range[1] + 1)
    for label, option in (
        (LABEL_BASE_DIR, "base_dir"),
        (LABEL_IMAGES_DIR, "images_dir"),
        (LABEL_ACCEL, "accel"),
    ):
        if host.labels.get(label):
            options[option] = host.labels[label]
    options["guest_outgoing"] = host.labels.get(LABEL_VM_OUTGOING) == VM_OUTGOING_ALLOWED
    try:
        return QemuDriver(connection, **options)
    except ValueError as exc:
        raise HostError(f"Host {host.name} is misconfigured: {exc}.") from exc


Builder = Callable[[Host], HostDriver]

BUILDERS: dict[DriverKind, Builder] = {DriverKind.DOCKER: _docker, DriverKind.SSH: _ssh}


class DriverFactory:
    """Builds one driver per host and thread, and reuses it until what it was built
    from changes (the host's address, TLS, SSH keys, ports, labels). A worker runs jobs
    in several threads at once (workers.worker): each has drivers of its own, so no
    driver's connection (an HTTP session, an SSH transport and its SFTP session) is
    ever used by two threads at once."""

    def __init__(self, builders: dict[DriverKind, Builder] | None = None) -> None:
        self._builders = dict(BUILDERS if builders is None else builders)
        self._cache: dict[tuple[int, str], tuple[tuple[object, ...], HostDriver]] = {}
        self._guard = threading.Lock()

    def register(self, kind: DriverKind, builder: Builder) -> None:
        self._builders[kind] = builder

    def for_host(self, host: Host) -> HostDriver:
        key = (threading.get_ident(), host.id)
        made_from = _made_from(host)
        with self._guard:
            cached = self._cache.pop(key, None)
        if cached and cached[0] == made_from:
            driver = cached[1]
        else:
            if cached:
                cached[1].close()
            try:
                builder = self._builders[host.driver]
            except KeyError:
                from shared.errors import HostError

                raise HostError(f"No driver for hosts of kind {host.driver.value}.") from None
            driver = builder(host)
        with self._guard:
            self._cache[key] = (made_from, driver)
        return driver

    def close(self) -> None:
        with self._guard:
            cached, self._cache = list(self._cache.values()), {}
        for _, driver in cached:
            driver.close()


def _made_from(host: Host) -> tuple[object, ...]:
    """What a host's driver is built from (`BUILDERS` read nothing else). Not its
    version: every placement on the host bumps that, and a driver rebuilt then would
    connect and ask the engine its version and its labels again on every provision."""
    return (
        host.driver,
        host.name,
        host.address,
        tuple(sorted(host.tls.items())),
        tuple(sorted(host.ssh.items())),
        host.port_range,
        tuple(sorted(host.labels.items())),
    )
