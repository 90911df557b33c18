"""The `agent` block of the config: each bad field one sentence, one pair in turns mode, no
secret in its public form."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import from_dict
from pipeline.errors import ConfigError

LIVEKIT = {"url": "ws://127.0.0.1:7880", "api_key": "devkey", "api_secret": "s3cr3t-value"}


def _config(tmp_path: Path, **agent: object):
    return from_dict({"livekit": LIVEKIT, "out_dir": str(tmp_path), "agent": agent})


@pytest.mark.parametrize(
    ("agent", "message"),
    [
        ({"cmd": "x"}, "'agent.name' is None; expected the agent name"),
        ({"name": "a", "answer_window_s": 0}, "'agent.answer_window_s' is 0.0; expected seconds"),
        ({"name": "a", "say": "x.wav"}, "'agent.say' is 'x.wav'; expected a list of file paths"),
        ({"name": "a", "colour": 1}, "unknown field 'agent.colour'"),
    ],
)
def test_agent_block_errors_name_the_field(tmp_path: Path, agent: dict, message: str) -> None:
    """Each bad field of the agent block is one sentence naming it."""
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        _config(tmp_path, **agent)


def test_an_agent_run_takes_many_callers_in_turns_mode(tmp_path: Path) -> None:
    """--pairs 3 with an agent under test is three callers; duplex is refused."""
    config = from_dict({"livekit": LIVEKIT, "pairs": 3, "join_ramp_s": 6, "agent": {"name": "a"}})
    assert config.pairs == 3 and config.public()["join_ramp_s"] == 6
    with pytest.raises(ConfigError, match="'mode' is 'duplex'; expected 'turns' with an agent"):
        from_dict({"livekit": LIVEKIT, "mode": "duplex", "agent": {"name": "a"}})


def test_the_manifest_never_holds_the_secret_even_in_the_command(tmp_path: Path) -> None:
    """A secret written into agent.cmd is redacted in the config's public form."""
    config = _config(tmp_path, name="a", cmd="LIVEKIT_API_SECRET=s3cr3t-value python a.py start")
    shown = config.public()["agent"]["cmd"]
    assert "s3cr3t-value" not in shown and shown.startswith("LIVEKIT_API_SECRET=<redacted>")
