"""How the capture stage's modules import one another: without a cycle, the worker left to runpy."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import scaled

PACKAGE = Path(__file__).resolve().parents[2] / "pipeline"


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name; `pipeline` is its `__init__`."""
    out = {}
    for path in sorted(PACKAGE.glob("*.py")):
        out["pipeline" if path.stem == "__init__" else f"pipeline.{path.stem}"] = path
    return out


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that `path` imports, at any depth (a deferred import counts too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the package itself
                base = "pipeline" + (f".{node.module}" if node.module else "")
            else:
                base = node.module or ""
            # `from pipeline import evidence` imports a submodule; `from pipeline import capture`,
            # the package's `__init__`.
            names = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names
            ]
        else:
            continue
        found.update(name for name in names if name in modules)
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph` (its modules in order, the first repeated last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for imported in sorted(graph[module]):
            if state.get(imported) == 1:
                return [*path[path.index(imported) :], imported]
            if imported not in state and (found := visit(imported)):
                return found
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module)):
            return found
    return None


def test_pipeline_has_no_import_cycle() -> None:
    """No pipeline module imports, directly or through others, a module that imports it."""
    modules = _modules()
    graph = {name: _imports(path, modules) - {name} for name, path in modules.items()}
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_only_the_package_and_the_cli_import_the_whole_stage() -> None:
    """No module of the stage imports its `__init__` or its command line (`__main__`)."""
    modules = _modules()
    for name, path in modules.items():
        if name in ("pipeline", "pipeline.__main__"):
            continue
        imported = _imports(path, modules)
        assert not imported & {"pipeline", "pipeline.__main__"}, f"{name} imports {imported}"


def test_a_worker_starts_without_a_runpy_warning() -> None:
    """Importing the package does not import `pipeline._worker`, which runs as `python -m`."""
    code = "import sys, pipeline; print('pipeline._worker' in sys.modules)"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=scaled(60),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
        ({"a": {"b"}, "b": {"b"}}, ["b", "b"]),
    ],
)
def test_the_cycle_finder_finds_cycles(
    graph: dict[str, set[str]], expected: list[str] | None
) -> None:
    """The cycle finder reports a cycle when there is one (so the tests above can fail)."""
    assert _cycle(graph) == expected
