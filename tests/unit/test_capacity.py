"""Capacity arithmetic: exact cores, vectors, and which resource does not fit."""

from __future__ import annotations

import pytest

from shared.capacity import (
    RESOURCE_FIELDS,
    Resources,
    api_name,
    centi_to_cores,
    cores_to_centi,
    shortfall,
    shortfall_message,
)


@pytest.mark.parametrize(
    ("cores", "centi"),
    [(0, 0), (0.01, 1), (0.1, 10), (0.29, 29), (0.57, 57), (1, 100), (1.15, 115), (1024, 102400)],
)
def test_cores_round_trip_through_hundredths(cores: float, centi: int) -> None:
    assert cores_to_centi(cores) == centi
    assert centi_to_cores(centi) == cores


def test_whole_cores_read_back_as_floats_without_noise() -> None:
    assert centi_to_cores(300) == 3.0
    assert isinstance(centi_to_cores(300), float)
    assert centi_to_cores(33) == 0.33


def test_sums_of_cores_are_exact() -> None:
    # 0.1 + 0.2 != 0.3 in floats; in hundredths it is.
    total = Resources()
    for _ in range(10):
        total += Resources.from_api({"cpu_cores": 0.1})
    assert total.to_api()["cpu_cores"] == 1.0
    three = Resources.from_api({"cpu_cores": 0.1}) + Resources.from_api({"cpu_cores": 0.2})
    assert three.cpu_centi == 30
    assert three.to_api()["cpu_cores"] == 0.3


def test_from_api_and_to_api_round_trip() -> None:
    api = {
        "cpu_cores": 1.5,
        "ram_mb": 1024,
        "storage_mb": 5120,
        "io": 100,
        "ports": 1,
        "databases": 2,
        "backups": 3,
    }
    res = Resources.from_api(api)
    assert res == Resources(
        cpu_centi=150, ram_mb=1024, storage_mb=5120, io=100, ports=1, databases=2, backups=3
    )
    assert res.to_api() == api
    assert list(res.to_api()) == list(RESOURCE_FIELDS)


def test_from_api_treats_missing_fields_as_zero() -> None:
    assert Resources.from_api({}) == Resources()
    assert Resources.from_api({"ram_mb": 64}) == Resources(ram_mb=64)


def test_addition_and_subtraction_are_per_component() -> None:
    a = Resources(cpu_centi=50, ram_mb=64, storage_mb=256, io=100, ports=1)
    b = Resources(cpu_centi=25, ram_mb=128, storage_mb=0, io=100, databases=1)
    assert a + b == Resources(
        cpu_centi=75, ram_mb=192, storage_mb=256, io=200, ports=1, databases=1
    )
    assert a - b == Resources(cpu_centi=25, ram_mb=-64, storage_mb=256, io=0, ports=1, databases=-1)
    assert a - b + b == a


def test_positive_part_keeps_only_growth() -> None:
    delta = Resources(cpu_centi=-10, ram_mb=64, storage_mb=0, ports=-1, backups=2)
    assert delta.positive_part() == Resources(ram_mb=64, backups=2)


def test_merged_replaces_only_the_given_fields() -> None:
    base = Resources(cpu_centi=50, ram_mb=64, storage_mb=256, io=100)
    merged = base.merged({"ram_mb": 128, "cpu_cores": 1.25, "ports": None})
    assert merged == Resources(cpu_centi=125, ram_mb=128, storage_mb=256, io=100)
    assert base.merged({}) == base
    assert base == Resources(cpu_centi=50, ram_mb=64, storage_mb=256, io=100)  # frozen


def test_items_use_storage_names() -> None:
    names = [name for name, _ in Resources().items()]
    assert names == [
        "cpu_centi",
        "ram_mb",
        "storage_mb",
        "io",
        "ports",
        "databases",
        "backups",
    ]
    assert api_name("cpu_centi") == "cpu_cores"
    assert api_name("ram_mb") == "ram_mb"


def test_shortfall_is_none_when_it_fits_exactly() -> None:
    limits = Resources(cpu_centi=100, ram_mb=1024)
    used = Resources(cpu_centi=50, ram_mb=512)
    assert shortfall(limits, used, Resources(cpu_centi=50, ram_mb=512)) is None
    assert shortfall(limits, used, Resources()) is None


def test_shortfall_names_the_first_resource_that_does_not_fit() -> None:
    limits = Resources(cpu_centi=100, ram_mb=1024, storage_mb=100, ports=1)
    used = Resources(cpu_centi=100, ram_mb=1024, storage_mb=100, ports=1)
    assert shortfall(limits, used, Resources(ram_mb=1)) == "ram_mb"
    assert shortfall(limits, used, Resources(ports=1, ram_mb=1)) == "ram_mb"  # API order
    assert shortfall(limits, used, Resources(cpu_centi=1, ram_mb=1)) == "cpu_centi"
    assert shortfall(limits, used, Resources(backups=1)) == "backups"


def test_shortfall_ignores_shrinking_components() -> None:
    limits = Resources(cpu_centi=100, ram_mb=100)
    used = Resources(cpu_centi=150, ram_mb=50)  # already over (a plan cut), shrinking is fine
    assert shortfall(limits, used, Resources(cpu_centi=-10, ram_mb=50)) is None
    assert shortfall(limits, used, Resources(cpu_centi=1)) == "cpu_centi"


def test_shortfall_with_zero_limits_refuses_any_growth() -> None:
    assert shortfall(Resources(), Resources(), Resources(databases=1)) == "databases"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("cpu_centi", "Not enough CPU left in the pool."),
        ("ram_mb", "Not enough RAM left in the pool."),
        ("storage_mb", "Not enough storage left in the pool."),
        ("io", "Not enough IO left in the pool."),
        ("ports", "Not enough ports left in the pool."),
        ("databases", "Not enough databases left in the pool."),
        ("backups", "Not enough backups left in the pool."),
    ],
)
def test_shortfall_message(name: str, message: str) -> None:
    assert shortfall_message(name) == message


def test_shortfall_message_for_a_host() -> None:
    assert shortfall_message("ram_mb", "host h1") == "Not enough RAM left in host h1."
