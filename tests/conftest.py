"""Shared fixtures: timeouts that scale with ECHOPROOF_TIMEOUT_FACTOR on slow machines."""

from __future__ import annotations

import os

import pytest

TIMEOUT_FACTOR = float(os.environ.get("ECHOPROOF_TIMEOUT_FACTOR", "1"))


def scaled(seconds: float) -> float:
    """A timeout in seconds, scaled by ECHOPROOF_TIMEOUT_FACTOR."""
    return seconds * TIMEOUT_FACTOR


@pytest.fixture
def timeout_factor() -> float:
    """The factor every test timeout is multiplied by."""
    return TIMEOUT_FACTOR
