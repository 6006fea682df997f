"""Results as Markdown: one section per benchmark, each figure beside its baseline,
plus the machine and the versions they were measured with."""

from __future__ import annotations

import math
import os
import platform
import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from devstack.processes import StartupError
from devstack.table import emulator_command

TIMES = "\N{MULTIPLICATION SIGN}"


@dataclass
class Row:
    figure: str
    corral: str
    baseline: str
    ratio: str = ""


@dataclass
class Section:
    """One benchmark's outcome. `rows` compare Corral with `baseline`; `details` are
    further Markdown lines (tables); `notes` explain how to read them."""

    title: str
    baseline: str
    rows: list[Row] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None

    def markdown(self) -> list[str]:
        lines = [f"## {self.title}", ""]
        if self.error is not None:
            return [*lines, f"**FAILED**: {self.error}", ""]
        lines += [f"Baseline: {self.baseline}", ""]
        if self.rows:
            lines += table(
                ["figure", "Corral", "baseline", "Corral / baseline"],
                [[r.figure, r.corral, r.baseline, r.ratio] for r in self.rows],
            )
            lines.append("")
        if self.details:
            lines += [*self.details, ""]
        lines.append(f"_({self.seconds:.0f} s)_")
        lines.append("")
        return lines

    def notes_markdown(self) -> list[str]:
        if not self.notes:
            return []
        return [f"### {self.title}", "", *(f"- {note}" for note in self.notes), ""]


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)]


# -- numbers -----------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (with 20 samples, p99 is the slowest)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def ms(seconds: float) -> str:
    if seconds != seconds:  # NaN
        return "n/a"
    value = seconds * 1000
    return f"{value:.0f} ms" if value >= 100 else f"{value:.1f} ms"


def ratio(corral: float, baseline: float, *, suffix: str = TIMES) -> str:
    if not baseline or corral != corral or baseline != baseline:
        return "n/a"
    value = corral / baseline
    if value < 0.1:
        return f"{value:.2g}{suffix}"  # two significant digits: 0.0004, not 0.00
    return f"{value:.2f}{suffix}" if value < 10 else f"{value:.1f}{suffix}"


def number(value: float, digits: int = 1) -> str:
    if value != value:
        return "n/a"
    return f"{value:,.{digits}f}"


# -- machine and versions ------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "cpu": cpu,
        "kernel": platform.release(),
    }


def _command_version(command: list[str]) -> str:
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    return (out.stdout or out.stderr).strip().splitlines()[0] if out.returncode == 0 else "?"


def checkout(path: Path) -> str:
    """A checkout of Corral as the report names it: its folder and commit."""
    commit = _command_version(["git", "-C", str(path), "log", "-1", "--format=%h %s"])
    return f"{path} (commit {commit})"


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("falcon", "gunicorn", "rq", "redis", "boto3", "docker", "pydantic"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    redis_server = _command_version(["redis-server", "--version"])
    found["redis-server"] = next(
        (part.split("=", 1)[1] for part in redis_server.split() if part.startswith("v=")),
        redis_server,
    )
    try:
        found["DynamoDB Local"] = _command_version(emulator_command("-version"))
    except StartupError:
        found["DynamoDB Local"] = "not installed"
    dockerd = _command_version(["dockerd", "--version"])
    found["dockerd"] = dockerd.removeprefix("Docker version ").split(",")[0]
    return found


def load_average() -> float:
    return os.getloadavg()[0]


def document(
    sections: Sequence[Section], *, mode: str, seconds: float, command: str, load: float
) -> list[str]:
    """The whole report: header, machine, versions, every section, then the notes.
    `load` is the 1-minute load average when the run began."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    box = machine()
    lines = [
        "# Corral benchmarks",
        "",
        f"`{command}` ({mode}), {now}, {seconds:.0f} s in all.",
        "",
        f"Machine: {box['nproc']} CPUs ({box['cpu']}), {box['memory']} memory, "
        f"Linux {box['kernel']}. Load average (1 min) {load:.2f} when the run began and "
        f"{load_average():.2f} at its end: other work on the machine slows Corral and its "
        "baselines alike, so read the ratios; each baseline was measured in the same run, "
        "next to its figure.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()) + ".",
        "",
    ]
    for section in sections:
        lines += section.markdown()
    notes = [line for section in sections for line in section.notes_markdown()]
    if notes:
        lines += ["## How these were measured, and how to read them", "", *notes]
    return lines
