"""Capacity arithmetic: resource vectors, what a request needs, and why it does not fit.

CPU is counted in hundredths of a core internally (`cpu_centi`) so that sums are exact;
the API speaks `cpu_cores` with at most two decimals.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

# The pooled resources of a cluster plan, in the order the API lists them.
RESOURCE_FIELDS: tuple[str, ...] = (
    "cpu_cores",
    "ram_mb",
    "storage_mb",
    "io",
    "ports",
    "databases",
    "backups",
)

HUMAN_NAMES: dict[str, str] = {
    "cpu_cores": "CPU",
    "ram_mb": "RAM",
    "storage_mb": "storage",
    "io": "IO",
    "ports": "ports",
    "databases": "databases",
    "backups": "backups",
    "containers": "container slots",
}


def cores_to_centi(cores: float) -> int:
    return round(cores * 100)


def centi_to_cores(centi: int) -> float:
    return centi / 100 if centi % 100 else float(centi // 100)


@dataclass(frozen=True)
class Resources:
    """A vector of pooled resources. `cpu_centi` is hundredths of a core."""

    cpu_centi: int = 0
    ram_mb: int = 0
    storage_mb: int = 0
    io: int = 0
    ports: int = 0
    databases: int = 0
    backups: int = 0

    @classmethod
    def from_api(cls, values: Mapping[str, Any]) -> Resources:
        """Build from the API's field names (`cpu_cores` as a float)."""
        kwargs = {name: int(values.get(name, 0)) for name in RESOURCE_FIELDS if name != "cpu_cores"}
        return cls(cpu_centi=cores_to_centi(float(values.get("cpu_cores", 0))), **kwargs)

    def to_api(self) -> dict[str, float | int]:
        out: dict[str, float | int] = {"cpu_cores": centi_to_cores(self.cpu_centi)}
        for name in RESOURCE_FIELDS[1:]:
            out[name] = getattr(self, name)
        return out

    def items(self) -> Iterator[tuple[str, int]]:
        """(storage name, value) pairs, as stored in the table."""
        for f in fields(self):
            yield f.name, getattr(self, f.name)

    def __add__(self, other: Resources) -> Resources:
        return Resources(**{k: v + getattr(other, k) for k, v in self.items()})

    def __sub__(self, other: Resources) -> Resources:
        return Resources(**{k: v - getattr(other, k) for k, v in self.items()})

    def positive_part(self) -> Resources:
        """Each component clamped at zero: the growth part of a delta."""
        return Resources(**{k: max(v, 0) for k, v in self.items()})

    def merged(self, overrides: Mapping[str, Any]) -> Resources:
        """A copy with the API-named fields present in `overrides` replaced."""
        changes: dict[str, int] = {}
        for name, value in overrides.items():
            if value is None:
                continue
            if name == "cpu_cores":
                changes["cpu_centi"] = cores_to_centi(float(value))
            else:
                changes[name] = int(value)
        return replace(self, **changes)


def api_name(storage_name: str) -> str:
    return "cpu_cores" if storage_name == "cpu_centi" else storage_name


def shortfall(
    limits: Resources,
    used: Resources,
    needed: Resources,
) -> str | None:
    """The first resource that `needed` would push past `limits`, or None if it fits."""
    for name, need in needed.items():
        if need > 0 and getattr(used, name) + need > getattr(limits, name):
            return name
    return None


def below_zero(used: Resources, delta: Resources) -> str | None:
    """The human name of the first counter that `delta` would take below zero."""
    for name, value in (used + delta).items():
        if value < 0:
            return HUMAN_NAMES[api_name(name)]
    return None


def shortfall_message(storage_name: str, scope: str = "the pool") -> str:
    return f"Not enough {HUMAN_NAMES[api_name(storage_name)]} left in {scope}."
