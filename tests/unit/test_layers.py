"""The layering rule of DEVELOPERS.md, checked on the source: a module imports only from its
own layer or layers above it, and the pure layers import no I/O and never read the clock."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "hyprstream"

# Layer of each top-level part of the package (lower number = higher in DEVELOPERS.md's list).
LAYERS = {
    "errors": 0, "_secrets": 0, "_version": 0,
    "model": 1,
    "windows": 2,
    "cachepolicy": 3,
    "backend": 4,
    "flightsql": 5,
    "service": 6, "app": 6, "config": 6, "cli": 6, "__init__": 6,
}
PURE = {"errors", "_secrets", "_version", "model", "windows", "cachepolicy"}
PURE_FILES = {"flightsql/_protocol.py", "flightsql/_metadata.py"}
FORBIDDEN_IN_PURE = {"duckdb", "adbc_driver_manager", "adbc_driver_postgresql", "adbc_driver_sqlite",
                     "adbc_driver_duckdb", "adbc_driver_flightsql", "pyarrow.flight", "socket",
                     "threading", "asyncio", "subprocess", "time", "datetime", "os", "grpc"}
CLOCK_CALLS = {"time", "time_ns", "monotonic", "monotonic_ns", "perf_counter", "now", "utcnow", "today"}


def part_of(path: Path) -> str:
    rel = path.relative_to(ROOT)
    return rel.parts[0].removesuffix(".py")


def imports(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return found


SOURCES = sorted(p for p in ROOT.rglob("*.py") if "_proto" not in p.parts)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_follow_the_layers(path: Path) -> None:
    part = part_of(path)
    assert part in LAYERS, f"{part} is not assigned a layer in this test"
    tree = ast.parse(path.read_text())
    for name in imports(tree):
        if not name.startswith("hyprstream."):
            continue
        target = name.split(".")[1]
        assert LAYERS.get(target, 99) <= LAYERS[part], f"{path.name} (layer {part}) imports {name}"


@pytest.mark.parametrize(
    "path",
    [p for p in SOURCES if part_of(p) in PURE or str(p.relative_to(ROOT)) in PURE_FILES],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_pure_layers_do_no_io_and_read_no_clock(path: Path) -> None:
    tree = ast.parse(path.read_text())
    for name in imports(tree):
        root = name.split(".")[0]
        assert name not in FORBIDDEN_IN_PURE, f"{path.name} imports {name}"
        assert root not in FORBIDDEN_IN_PURE, f"{path.name} imports {name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            assert node.func.attr not in CLOCK_CALLS, f"{path.name} calls .{node.func.attr}()"
        if isinstance(node, ast.Name) and node.id == "open":
            raise AssertionError(f"{path.name} opens files")
