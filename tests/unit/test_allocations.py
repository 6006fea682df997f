"""Allocations as plain data: which ports are drawn, how they map into the container,
what the process is told, and how a container's label gives them back."""

from __future__ import annotations

import random

import pytest

from shared.allocations import (
    Allocation,
    allocations_for,
    environment,
    pick_ports,
    ranges_overlap,
)
from shared.errors import NoHostAvailable
from shared.runtime import allocations_published, published_ports


def test_ports_are_drawn_among_the_free_ones_only() -> None:
    held = set(range(20000, 20010)) - {20003, 20007}
    for seed in range(20):
        picked = pick_ports((20000, 20009), held, 2, "h", random.Random(seed))
        assert sorted(picked) == [20003, 20007]


def test_too_few_free_ports_say_how_many_are_left() -> None:
    with pytest.raises(NoHostAvailable) as caught:
        pick_ports((20000, 20002), {20000, 20001}, 2, "edge")
    assert caught.value.message == (
        "Host edge has 1 free port(s) left in its range 20000-20002; the container needs 2."
    )


def test_no_ports_wanted_draws_none() -> None:
    assert pick_ports((20000, 20000), {20000}, 0, "h") == []


def test_container_ports_map_in_order_and_the_rest_one_to_one() -> None:
    allocations = allocations_for("198.51.100.4", [20005, 20001, 20009], [80, 443])
    assert [a.to_json() for a in allocations] == [
        {"ip": "198.51.100.4", "port": 20005, "primary": True, "container_port": 80},
        {"ip": "198.51.100.4", "port": 20001, "primary": False, "container_port": 443},
        {"ip": "198.51.100.4", "port": 20009, "primary": False, "container_port": 20009},
    ]
    assert environment(allocations) == {
        "SERVER_IP": "198.51.100.4",
        "SERVER_PORT": "80",
        "SERVER_PORTS": "80,443,20009",
    }
    assert environment(()) == {}


def test_the_label_gives_the_allocations_back() -> None:
    allocations = allocations_for("10.0.0.1", [20002, 20004], [8080])
    label = published_ports(allocations)
    assert label == "20002:8080,20004:20004"
    assert allocations_published(label, "10.0.0.1") == allocations
    assert allocations_published("", "10.0.0.1") == ()
    assert Allocation.from_json(allocations[0].to_json()) == allocations[0]


@pytest.mark.parametrize(
    ("a", "b", "overlap"),
    [
        ((20000, 20099), (20099, 20199), True),
        ((20000, 20099), (20100, 20199), False),
        ((20050, 20060), (20000, 20099), True),
        ((20100, 20199), (20000, 20099), False),
    ],
)
def test_ranges_overlap_when_they_share_a_port(
    a: tuple[int, int], b: tuple[int, int], overlap: bool
) -> None:
    assert ranges_overlap(a, b) is overlap
    assert ranges_overlap(b, a) is overlap
