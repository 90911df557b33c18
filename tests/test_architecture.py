"""The architecture holds: every import-linter contract of pyproject.toml is kept (which stage
may use which, the two kinds of conversation apart, no circles), and a worker process starts
without importing itself twice."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import python_output, scaled

REPO = Path(__file__).resolve().parents[1]


def test_every_import_contract_is_kept() -> None:
    """`lint-imports` (import-linter) over the repository's contracts: all kept."""
    done = subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()",
         "--no-cache"],
        cwd=REPO, capture_output=True, text=True, timeout=scaled(120),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert ", 0 broken." in done.stdout


def test_a_worker_starts_without_a_runpy_warning() -> None:
    """Importing the package does not import `pipeline.worker`, which runs as `python -m`."""
    code = "import sys, pipeline; print('pipeline.worker' in sys.modules)"
    assert python_output(code) == "False"
