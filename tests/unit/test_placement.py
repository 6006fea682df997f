"""Placement: ready hosts of the engine with room, best fit first; and why none fits."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from shared.capacity import Resources
from shared.errors import NoHostAvailable
from shared.models import DriverKind, Engine, Host, HostStatus
from shared.placement import candidates, free_score

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SMALL = Resources(cpu_centi=100, ram_mb=1024, storage_mb=10_000)
ROOMY = Resources(cpu_centi=800, ram_mb=8192, storage_mb=100_000)
EMPTY = Resources()


def host(
    name: str,
    capacity: Resources = ROOMY,
    used: Resources = EMPTY,
    *,
    status: HostStatus = HostStatus.READY,
    engines: tuple[Engine, ...] = (Engine.DOCKER,),
    labels: dict[str, str] | None = None,
    workloads: int = 0,
) -> Host:
    return Host(
        id=name,
        name=name,
        driver=DriverKind.DOCKER,
        address="unix:///x.sock",
        engines=engines,
        capacity=capacity,
        used=used,
        workload_count=workloads,
        status=status,
        labels=labels or {},
        created_at=NOW,
        updated_at=NOW,
    )


def names(hosts: list[Host]) -> list[str]:
    return [h.name for h in hosts]


def test_best_fit_first() -> None:
    roomy = host("roomy")
    half = host("half", used=Resources(cpu_centi=400, ram_mb=4096, storage_mb=50_000))
    tight = host("tight", used=Resources(cpu_centi=700, ram_mb=7000, storage_mb=90_000))

    assert names(candidates([roomy, half, tight], Engine.DOCKER, SMALL)) == [
        "tight",
        "half",
        "roomy",
    ]


def test_best_fit_compares_shares_not_absolute_amounts() -> None:
    big = host(
        "big",
        Resources(cpu_centi=6400, ram_mb=262144, storage_mb=1_000_000),
        Resources(cpu_centi=6000, ram_mb=250_000, storage_mb=950_000),
    )
    small = host("small", Resources(cpu_centi=200, ram_mb=2048, storage_mb=20_000))

    # big keeps ~4% free after placing, small ~45%: big is the tighter fit.
    assert names(candidates([small, big], Engine.DOCKER, SMALL)) == ["big", "small"]


def test_ties_go_to_the_host_with_fewer_workloads() -> None:
    busy = host("busy", workloads=5)
    quiet = host("quiet", workloads=1)

    assert names(candidates([busy, quiet], Engine.DOCKER, SMALL)) == ["quiet", "busy"]


def test_an_exact_fit_is_a_candidate() -> None:
    exact = host("exact", SMALL)
    assert names(candidates([exact], Engine.DOCKER, SMALL)) == ["exact"]
    assert free_score(exact, SMALL)[0] == 0


def test_hosts_without_room_are_left_out() -> None:
    full_ram = host("full", used=Resources(ram_mb=8000))
    ok = host("ok")
    assert names(candidates([full_ram, ok], Engine.DOCKER, SMALL)) == ["ok"]


def test_only_host_dimensions_count_on_a_host() -> None:
    # io, databases and backups are pooled per cluster; hosts do not limit them (and a
    # Docker host's default port range has room for 50 ports).
    needed = SMALL + Resources(io=1000, ports=50, databases=3, backups=3)
    assert names(candidates([host("h")], Engine.DOCKER, needed)) == ["h"]


def test_a_docker_host_needs_free_ports_in_its_range() -> None:
    tight = replace(host("tight"), port_range=(20000, 20009), used=Resources(ports=9))
    roomy = replace(host("roomy"), port_range=(21000, 21009), used=Resources(ports=5))
    two_ports = SMALL + Resources(ports=2)
    assert names(candidates([tight, roomy], Engine.DOCKER, two_ports)) == ["roomy"]
    with pytest.raises(NoHostAvailable) as caught:
        candidates([tight], Engine.DOCKER, two_ports)
    assert "1 free port(s) left in its range 20000-20009" in caught.value.message
    # a VM host's forwarded ports are its QEMU driver's to pick
    vm = replace(host("vm", engines=(Engine.QEMU,)), driver=DriverKind.SSH, port_range=(1, 1))
    assert names(candidates([vm], Engine.QEMU, two_ports)) == ["vm"]


def test_hosts_of_another_engine_are_left_out() -> None:
    vm_host = host("vm", engines=(Engine.QEMU,))
    both = host("both", engines=(Engine.DOCKER, Engine.QEMU), used=Resources(ram_mb=4096))
    assert names(candidates([vm_host, both], Engine.DOCKER, SMALL)) == ["both"]
    assert names(candidates([vm_host, both], Engine.QEMU, SMALL)) == ["both", "vm"]


def test_labels_narrow_the_pool() -> None:
    eu = host("eu", labels={"region": "eu", "disk": "ssd"})
    us = host("us", labels={"region": "us"})
    assert names(candidates([eu, us], Engine.DOCKER, SMALL, {"region": "eu"})) == ["eu"]
    assert names(candidates([eu, us], Engine.DOCKER, SMALL, {})) == ["eu", "us"]


@pytest.mark.parametrize(
    ("hosts", "labels", "reason"),
    [
        ([], None, "No host runs the docker engine."),
        ([host("vm", engines=(Engine.QEMU,))], None, "No host runs the docker engine."),
        ([host("us", labels={"region": "us"})], {"region": "eu"}, "No host matches the label"),
        (
            [host("d1", status=HostStatus.DRAINING), host("d2", status=HostStatus.DRAINING)],
            None,
            "Every host that could take it is draining.",
        ),
        (
            [host("d", status=HostStatus.DRAINING), host("x", status=HostStatus.DOWN)],
            None,
            "No host that could take it is ready.",
        ),
        ([host("nr", status=HostStatus.NOT_READY)], None, "No host that could take it is ready."),
        (
            [host("full", used=Resources(cpu_centi=800))],
            None,
            "No ready host has enough free capacity for it.",
        ),
    ],
)
def test_why_no_host_fits(hosts: list[Host], labels: dict[str, str] | None, reason: str) -> None:
    with pytest.raises(NoHostAvailable) as refused:
        candidates(hosts, Engine.DOCKER, SMALL, labels)
    assert refused.value.message.startswith(reason)
    assert refused.value.status == 409


def test_not_ready_hosts_are_skipped_when_a_ready_one_fits() -> None:
    hosts = [
        host("draining", status=HostStatus.DRAINING, used=Resources(ram_mb=7000)),
        host("down", status=HostStatus.DOWN),
        host("ready"),
    ]
    assert names(candidates(hosts, Engine.DOCKER, SMALL)) == ["ready"]
