"""Choosing a driver for a host: a dict from the host's driver kind to a builder.

Drivers import their libraries (docker, paramiko) only when built, so nothing on
the HTTP path pays for them."""

from __future__ import annotations

from collections.abc import Callable

from infra.drivers.base import HostDriver
from shared.models import DriverKind, Host


def _docker(host: Host) -> HostDriver:
    from infra.drivers.docker import DockerDriver

    return DockerDriver(host.address, host.tls or None)


Builder = Callable[[Host], HostDriver]

BUILDERS: dict[DriverKind, Builder] = {DriverKind.DOCKER: _docker}


class DriverFactory:
    """Builds one driver per host and reuses it while the host record is unchanged."""

    def __init__(self, builders: dict[DriverKind, Builder] | None = None) -> None:
        self._builders = dict(BUILDERS if builders is None else builders)
        self._cache: dict[str, tuple[int, HostDriver]] = {}

    def register(self, kind: DriverKind, builder: Builder) -> None:
        self._builders[kind] = builder

    def for_host(self, host: Host) -> HostDriver:
        cached = self._cache.get(host.id)
        if cached and cached[0] == host.version and _same_address(cached[1], host):
            return cached[1]
        if cached:
            cached[1].close()
        try:
            builder = self._builders[host.driver]
        except KeyError:
            from shared.errors import HostError

            raise HostError(f"No driver for hosts of kind {host.driver.value}.") from None
        driver = builder(host)
        self._cache[host.id] = (host.version, driver)
        return driver

    def close(self) -> None:
        for _, driver in self._cache.values():
            driver.close()
        self._cache.clear()


def _same_address(driver: HostDriver, host: Host) -> bool:
    return getattr(driver, "address", host.address) == host.address
