"""Shared fixtures: timeouts that scale with ECHOPROOF_TIMEOUT_FACTOR on slow machines."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

TIMEOUT_FACTOR = float(os.environ.get("ECHOPROOF_TIMEOUT_FACTOR", "1"))


def scaled(seconds: float) -> float:
    """A timeout in seconds, scaled by ECHOPROOF_TIMEOUT_FACTOR."""
    return seconds * TIMEOUT_FACTOR


@pytest.fixture
def timeout_factor() -> float:
    """The factor every test timeout is multiplied by."""
    return TIMEOUT_FACTOR


def python_output(code: str, timeout_s: float = 60) -> str:
    """What `python -c code` prints in a fresh interpreter (stripped); it must exit 0."""
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=scaled(timeout_s),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()
