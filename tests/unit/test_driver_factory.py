"""DriverFactory keeps a host's driver (and its open connection) while what it was
built from is unchanged: a placement on the host bumps the host's version and counters
but needs no new connection; a new address does."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from infra.drivers.factory import DriverFactory
from shared.capacity import Resources
from shared.models import DriverKind, Engine, Host, HostStatus

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ROOMY = Resources(cpu_centi=800, ram_mb=8192, storage_mb=100_000)


class Recorded:
    """A driver that only records whether it was closed."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.closed = False

    def close(self) -> None:
        self.closed = True


def docker_host() -> Host:
    return Host(
        id="h1",
        name="h1",
        driver=DriverKind.DOCKER,
        address="unix:///one.sock",
        engines=(Engine.DOCKER,),
        capacity=ROOMY,
        used=Resources(),
        workload_count=0,
        status=HostStatus.READY,
        labels={},
        created_at=NOW,
        updated_at=NOW,
    )


def recording_factory(built: list[Recorded]) -> DriverFactory:
    def build(host: Host) -> Any:
        built.append(Recorded(host.address))
        return built[-1]

    return DriverFactory({DriverKind.DOCKER: build})


def test_a_placement_on_the_host_keeps_its_driver() -> None:
    built: list[Recorded] = []
    factory = recording_factory(built)
    host = docker_host()

    first: Any = factory.for_host(host)
    placed = replace(
        host, version=host.version + 1, used=Resources(cpu_centi=50, ram_mb=64), workload_count=1
    )
    again = factory.for_host(placed)

    assert (again is first, len(built), built[0].closed) == (True, 1, False)


def test_a_new_address_or_tls_builds_a_new_driver_and_closes_the_old() -> None:
    built: list[Recorded] = []
    factory = recording_factory(built)
    host = docker_host()

    factory.for_host(host)
    factory.for_host(replace(host, address="tcp://10.0.0.2:2376", version=2))
    factory.for_host(
        replace(host, address="tcp://10.0.0.2:2376", tls={"ca_cert": "pem"}, version=3)
    )

    assert [d.address for d in built] == [
        "unix:///one.sock",
        "tcp://10.0.0.2:2376",
        "tcp://10.0.0.2:2376",
    ]
    assert [d.closed for d in built] == [True, True, False]
