"""The `probe` block of the config and the probe-rate fault."""

from __future__ import annotations

import pytest

from pipeline.config import from_dict
from pipeline.config.faults import RATE_FAULT_ENV
from pipeline.config.probe import ProbeConfig
from pipeline.errors import ConfigError

CREDS = {"livekit": {"url": "ws://127.0.0.1:7880", "api_key": "k", "api_secret": "s"}}


def test_config_block_null_and_faults() -> None:
    """The default probe is on; null turns it off; a bad share or fault is one sentence."""
    assert from_dict(CREDS).probe == ProbeConfig()
    assert from_dict({**CREDS, "probe": None}).probe is None
    with pytest.raises(ConfigError, match=r"'probe\.share' is 0; expected a number in \(0, 1\]"):
        from_dict({**CREDS, "probe": {"share": 0}})
    with pytest.raises(ConfigError, match=r"unknown field 'probe\.level'"):
        from_dict({**CREDS, "probe": {"level": 1}})
    config = from_dict(CREDS, env={RATE_FAULT_ENV: "support:24000:22050"})
    assert config.public()["faults"] == {
        "probe_rate": {"role": "support", "audio_hz": 24000, "played_hz": 22050}
    }
    with pytest.raises(ConfigError, match="expected ROLE:AUDIO_HZ:PLAYED_HZ"):
        from_dict(CREDS, env={RATE_FAULT_ENV: "nobody:1:2"})
