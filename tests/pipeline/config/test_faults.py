"""The fault switches read from the environment: each malformed one is one sentence."""

from __future__ import annotations

import pytest

from pipeline.config.faults import FreezeFault
from pipeline.errors import ConfigError


def test_the_freeze_fault_is_one_sentence_when_malformed() -> None:
    """ECHOPROOF_FAULT_FREEZE takes AT_S:DURATION_S; anything else is a ConfigError naming it."""
    assert FreezeFault.parse("15:0.5") == FreezeFault(15.0, 0.5)
    for text in ("15", "a:b", "-1:0.5", "3:0", "3:120"):
        with pytest.raises(ConfigError, match=r"ECHOPROOF_FAULT_FREEZE is .*expected AT_S"):
            FreezeFault.parse(text)
