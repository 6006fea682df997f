"""Pure decisions: active clusters, allowed eggs, minimums, create defaults, lease expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared import rules
from shared.capacity import Resources
from shared.errors import BelowMinimum, EggNotAllowed, InvalidCluster, InvalidInput
from shared.models import Cluster, ClusterStatus, Egg, Engine, Plan

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
NONE = Resources()


def egg(minimum: Resources = NONE, defaults: Resources | None = None, **kw: object) -> Egg:
    return Egg(
        id=str(kw.pop("id", "egg-1")),
        name=str(kw.pop("name", "busybox")),
        engine=Engine.DOCKER,
        image="corral/busybox:latest",
        command=None,
        environment={},
        minimum=minimum,
        defaults=defaults if defaults is not None else minimum,
        stop_timeout=5,
        created_at=NOW,
    )


def plan(**kw: object) -> Plan:
    return Plan(name="p", limits=Resources(ram_mb=1024), max_containers=5, **kw)  # type: ignore[arg-type]


def cluster(status: ClusterStatus = ClusterStatus.ACTIVE, egg_ids: tuple[str, ...] = ()) -> Cluster:
    return Cluster(
        id="c1",
        name="c",
        status=status,
        plan=plan(),
        used=Resources(),
        container_count=0,
        egg_ids=egg_ids,
        key_count=1,
        created_at=NOW,
        updated_at=NOW,
    )


# -- clusters and eggs ----------------------------------------------------------------


def test_only_an_active_cluster_passes() -> None:
    rules.require_active(cluster(ClusterStatus.ACTIVE))
    for status in (ClusterStatus.SUSPENDED, ClusterStatus.EXPIRED):
        with pytest.raises(InvalidCluster, match=f"Cluster is {status.value}."):
            rules.require_active(cluster(status))


def test_egg_must_be_in_the_whitelist() -> None:
    allowed = cluster(egg_ids=("a", "b"))
    rules.require_egg_allowed(allowed, "a")
    with pytest.raises(EggNotAllowed) as refused:
        rules.require_egg_allowed(allowed, "c")
    assert refused.value.status == 400
    with pytest.raises(EggNotAllowed):
        rules.require_egg_allowed(cluster(egg_ids=()), "a")


def test_an_allowed_egg_that_no_longer_exists_reads_as_not_allowed() -> None:
    e = egg()
    assert rules.egg_or_not_allowed({"egg-1": e}, "egg-1") is e
    with pytest.raises(EggNotAllowed, match="not available"):
        rules.egg_or_not_allowed({"egg-1": e}, "egg-2")


# -- minimums -------------------------------------------------------------------------


def test_minimum_is_the_eggs_raised_to_the_absolute_floors() -> None:
    assert rules.minimum_for(egg(Resources())) == Resources(cpu_centi=1, ram_mb=6)
    assert rules.minimum_for(egg(Resources(cpu_centi=10, ram_mb=16, storage_mb=100))) == Resources(
        cpu_centi=10, ram_mb=16, storage_mb=100
    )


def test_check_minimums_accepts_exactly_the_minimum() -> None:
    e = egg(Resources(cpu_centi=10, ram_mb=16, ports=1))
    rules.check_minimums(Resources(cpu_centi=10, ram_mb=16, ports=1), e)
    rules.check_minimums(Resources(cpu_centi=400, ram_mb=4096, ports=3, backups=1), e)


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        (Resources(cpu_centi=9, ram_mb=16, ports=1), "cpu_cores is below its minimum of 0.1"),
        (Resources(cpu_centi=10, ram_mb=15, ports=1), "ram_mb is below its minimum of 16"),
        (Resources(cpu_centi=10, ram_mb=16, ports=0), "ports is below its minimum of 1"),
        (Resources(cpu_centi=10, ram_mb=16, ports=1, io=-1), "io is below its minimum of 0"),
        (Resources(cpu_centi=10, ram_mb=16, ports=1, backups=-3), "backups is below its minimum"),
        (Resources(cpu_centi=0, ram_mb=0, ports=0), "cpu_cores is below"),  # first in order
    ],
)
def test_check_minimums_names_the_field_and_its_minimum(resources: Resources, message: str) -> None:
    with pytest.raises(BelowMinimum) as refused:
        rules.check_minimums(resources, egg(Resources(cpu_centi=10, ram_mb=16, ports=1)))
    assert message in refused.value.message
    assert refused.value.message.endswith("for egg busybox.")
    assert refused.value.code == "below_minimum"
    assert refused.value.status == 400


def test_absolute_floors_apply_to_an_egg_without_minimums() -> None:
    e = egg(Resources())
    rules.check_minimums(Resources(cpu_centi=1, ram_mb=6), e)
    with pytest.raises(BelowMinimum, match="ram_mb is below its minimum of 6"):
        rules.check_minimums(Resources(cpu_centi=1, ram_mb=5), e)
    with pytest.raises(BelowMinimum, match=r"cpu_cores is below its minimum of 0\.01"):
        rules.check_minimums(Resources(cpu_centi=0, ram_mb=6), e)


# -- create defaults ------------------------------------------------------------------


def test_create_takes_the_eggs_defaults() -> None:
    defaults = Resources(cpu_centi=50, ram_mb=64, storage_mb=256, io=100)
    e = egg(Resources(cpu_centi=10, ram_mb=16), defaults)
    assert rules.resources_for_create({}, e) == defaults


def test_create_overrides_only_what_was_given() -> None:
    defaults = Resources(cpu_centi=50, ram_mb=64, storage_mb=256, io=100)
    e = egg(Resources(cpu_centi=10, ram_mb=16), defaults)
    got = rules.resources_for_create({"ram_mb": 128, "cpu_cores": 1.5, "ports": 2}, e)
    assert got == Resources(cpu_centi=150, ram_mb=128, storage_mb=256, io=100, ports=2)


def test_create_checks_the_result_against_the_minimums() -> None:
    e = egg(Resources(cpu_centi=10, ram_mb=16), Resources(cpu_centi=50, ram_mb=64))
    with pytest.raises(BelowMinimum, match="ram_mb"):
        rules.resources_for_create({"ram_mb": 8}, e)
    with pytest.raises(BelowMinimum, match="storage_mb"):
        rules.resources_for_create({"storage_mb": -1}, e)


def test_create_refuses_fields_that_are_not_resources() -> None:
    with pytest.raises(ValueError, match="name"):
        rules.resources_for_create({"name": "web"}, egg())


# -- lease expiry ---------------------------------------------------------------------


def test_no_lifetime_and_no_plan_default_means_no_expiry() -> None:
    assert rules.expiry_for(NOW, plan(), None, None) is None


def test_lifetime_counts_from_now() -> None:
    assert rules.expiry_for(NOW, plan(), 3600, None) == NOW + timedelta(hours=1)


def test_the_plans_default_lifetime_applies_when_none_is_given() -> None:
    assert rules.expiry_for(NOW, plan(default_lifetime=60), None, None) == NOW + timedelta(
        seconds=60
    )


def test_an_absolute_expiry_is_taken_as_given_and_naive_means_utc() -> None:
    at = NOW + timedelta(days=1)
    assert rules.expiry_for(NOW, plan(), None, at) == at
    assert rules.expiry_for(NOW, plan(), None, at.replace(tzinfo=None)) == at


def test_an_expiry_in_the_past_is_invalid() -> None:
    with pytest.raises(InvalidInput, match="future"):
        rules.expiry_for(NOW, plan(), None, NOW)
    with pytest.raises(InvalidInput):
        rules.expiry_for(NOW, plan(), None, NOW - timedelta(seconds=1))


def test_the_plans_maximum_caps_the_lease() -> None:
    capped = plan(max_lifetime=3600)
    assert rules.expiry_for(NOW, capped, None, None) == NOW + timedelta(hours=1)
    assert rules.expiry_for(NOW, capped, 3600, None) == NOW + timedelta(hours=1)
    with pytest.raises(InvalidInput, match="3600"):
        rules.expiry_for(NOW, capped, 3601, None)
    with pytest.raises(InvalidInput):
        rules.expiry_for(NOW, capped, None, NOW + timedelta(hours=2))
