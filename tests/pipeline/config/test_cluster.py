"""The `ray` block of config.json: defaults, values, and one sentence for a wrong field."""

from __future__ import annotations

import pytest

from pipeline.config import from_dict
from pipeline.config.cluster import DEFAULTS
from pipeline.errors import ConfigError

LIVEKIT = {"url": "ws://127.0.0.1:7880", "api_key": "k", "api_secret": "s"}


def test_defaults_and_values() -> None:
    """Absent: the defaults; given: its values, in the manifest's config too."""
    assert from_dict({"livekit": LIVEKIT}).ray.public() == DEFAULTS
    config = from_dict({"livekit": LIVEKIT, "ray": {"cpus_per_conversation": 0.5}})
    assert config.ray.cpus_per_conversation == 0.5
    assert config.public()["ray"] == {**DEFAULTS, "cpus_per_conversation": 0.5}


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"cpu": 1}, "config.json has an unknown field 'ray.cpu'; expected one of "
                     "'ray.cpus_per_conversation', 'ray.lost_after_s'."),
        ({"cpus_per_conversation": 0}, "config.json: 'ray.cpus_per_conversation' is 0; "
                                       "expected a number in (0, 64]."),
        ({"cpus_per_conversation": "1"}, "config.json: 'ray.cpus_per_conversation' is '1' "
                                         "(a string); expected a number."),
        ({"lost_after_s": 1}, "config.json: 'ray.lost_after_s' is 1; expected seconds in "
                              "[5, 600]."),
        ([], "config.json: 'ray' is a list; expected an object."),
    ],
)  # fmt: skip
def test_a_wrong_field_is_one_sentence(block: object, message: str) -> None:
    """Each wrong field names itself, what it is and what was expected."""
    with pytest.raises(ConfigError) as info:
        from_dict({"livekit": LIVEKIT, "ray": block})
    assert str(info.value) == message
