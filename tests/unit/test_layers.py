"""Imports point one way (DESIGN.md): handlers → services → infra → shared, and
workers → services → infra → shared. Checked on the source, imports inside functions
included, so a lazy import cannot hide a wrong turn."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ("shared", "infra", "services", "handlers", "workers", "devstack", "cli")

# What each production package may import of the project. The drivers (docker, paramiko,
# QEMU over SSH) are for the workers alone: handlers and services run in the Lambda
# package, which holds no driver.
ALLOWED: dict[str, tuple[str, ...]] = {
    "shared": ("shared",),
    "infra": ("shared", "infra"),
    "services": ("shared", "infra", "services"),
    "handlers": ("shared", "infra", "services", "handlers"),
    "workers": ("shared", "infra", "services", "workers"),
    # The command line reaches Corral over HTTP only, as any client does.
    "cli": ("cli",),
}
NEVER: dict[str, tuple[str, ...]] = {
    "services": ("infra.drivers",),
    "handlers": ("infra.drivers",),
}


def _project_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name.split(".")[0] in PROJECT}


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(f"{p}.") for p in prefixes)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_point_one_way(package: str) -> None:
    modules = _modules(package)
    assert modules, f"{package}/ has no modules"
    wrong = {
        f"{path.relative_to(ROOT)} imports {name}"
        for path in modules
        for name in _project_imports(path)
        if not _within(name, ALLOWED[package]) or _within(name, NEVER.get(package, ()))
    }
    assert not wrong, "\n".join(sorted(wrong))


def test_the_check_sees_a_wrong_import(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text("def lazy():\n    from infra.drivers.docker.driver import DockerDriver\n")
    found = _project_imports(module)
    assert "infra.drivers.docker.driver" in found
    assert _within("infra.drivers.docker.driver", NEVER["handlers"])
