"""benchmarks/ uses only the packages' public names and helpers of its own, never the test tree."""

from __future__ import annotations

import ast
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
PACKAGES = {"echoproof", "dsp", "pipeline", "verify"}


def _imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) for every `from module import name` and `import module` of a file."""
    found: list[tuple[str, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, "") for alias in node.names]
    return found


def test_no_benchmark_imports_the_tests_or_a_private_name() -> None:
    """No `tests.` import; from echoproof, dsp, pipeline and verify only public modules and
    names."""
    bad = []
    for path in sorted(BENCHMARKS.glob("*.py")):
        for module, name in _imports(path):
            parts = module.split(".")
            if parts[0] == "tests":
                bad.append(f"{path.name}: {module}")
            elif parts[0] in PACKAGES and (
                any(p.startswith("_") for p in parts[1:]) or name.startswith("_")
            ):
                bad.append(f"{path.name}: {module} {name}".strip())
    assert bad == []
