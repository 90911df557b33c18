"""The config file: defaults, environment overrides and one clear sentence per mistake."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.config import DEFAULTS, Config, from_dict, load_config, parse_config
from pipeline.errors import ConfigError, PipelineError
from tests.pipeline.conftest import REPO

LIVEKIT = {"url": "ws://127.0.0.1:7880", "api_key": "devkey", "api_secret": "secret"}


def test_committed_file_holds_the_defaults() -> None:
    """A file with only the livekit block runs with exactly the committed file's values."""
    committed = load_config(REPO / "config.json", env={})
    minimal = from_dict({"livekit": LIVEKIT})
    assert minimal.public() == committed.public()
    data = json.loads((REPO / "config.json").read_text())
    assert {k: v for k, v in data.items() if k != "livekit"} == DEFAULTS
    assert committed.url == "ws://127.0.0.1:7880"
    assert (committed.api_key, committed.api_secret) == ("devkey", "secret")


def test_environment_overrides_the_file() -> None:
    """LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET win over the file; empty ones do not."""
    env = {"LIVEKIT_URL": "wss://x.livekit.cloud", "LIVEKIT_API_KEY": "K", "LIVEKIT_API_SECRET": ""}
    c = from_dict({"livekit": LIVEKIT}, env=env)
    assert (c.url, c.api_key, c.api_secret) == ("wss://x.livekit.cloud", "K", "secret")


def test_credentials_from_environment_alone() -> None:
    """An empty livekit block is fine when all three variables are set."""
    env = {
        "LIVEKIT_URL": "https://h.example:8443",
        "LIVEKIT_API_KEY": "k",
        "LIVEKIT_API_SECRET": "s",
    }
    c = from_dict({"livekit": {}}, env=env)
    assert c.ws_url == "wss://h.example:8443"
    assert c.http_url == "https://h.example:8443"
    assert not c.is_loopback


def test_urls_and_loopback() -> None:
    """http(s) URLs become ws(s) for the SDK and the reverse for the API; loopback is recognised."""
    c = from_dict({"livekit": {**LIVEKIT, "url": "http://localhost:7880"}})
    assert (c.ws_url, c.http_url, c.port, c.is_loopback) == (
        "ws://localhost:7880",
        "http://localhost:7880",
        7880,
        True,
    )
    assert from_dict({"livekit": {**LIVEKIT, "url": "wss://[::1]"}}).port == 443


def test_public_form_has_no_secret() -> None:
    """The manifest's copy of the config drops api_key and api_secret, and repr hides them."""
    c = from_dict({"livekit": {**LIVEKIT, "api_secret": "topsecret-value"}})
    text = json.dumps(c.public()) + repr(c)
    assert "topsecret-value" not in text
    assert "devkey" not in text
    assert "api_secret" not in text


def test_optional_fields_are_read() -> None:
    """Every optional field is taken from the file."""
    c = from_dict(
        {
            "livekit": LIVEKIT,
            "duration_s": 7,
            "mode": "duplex",
            "pairs": 3,
            "out_dir": "elsewhere",
            "connect_timeout_s": 2.5,
            "tones": {"customer_hz": 500},
            "burst": {"duration_s": 0.2, "period_s": 0.5},
            "queue_size_ms": 20,
            "red": False,
            "thresholds": {"max_bursts_lost": 1},
            "signing_key": "k.pem",
        }
    )
    assert (c.duration_s, c.mode, c.pairs, c.out_dir) == (7.0, "duplex", 3, Path("elsewhere"))
    assert (c.customer_hz, c.support_hz, c.burst_s, c.period_s) == (500.0, 550.0, 0.2, 0.5)
    assert (c.queue_size_ms, c.red, dict(c.thresholds), c.signing_key) == (
        20,
        False,
        {"max_bursts_lost": 1},
        Path("k.pem"),
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"livekit": {"url": "ws://h:1",}}', "not valid JSON: Expecting property name"),
        ('{\n  "livekit": {\n    "url" "x"\n  }\n}', "at line 3, column 11"),
        ("[1, 2]", "holds a list; expected a JSON object"),
        ("{}", "has no 'livekit' block"),
        ('{"livekit": 5}', "'livekit' is 5 (a number); expected an object"),
        (
            '{"livekit": {"url": "ws://h:1", "api_key": "k"}}',
            "has no 'livekit.api_secret' and LIVEKIT_API_SECRET is not set",
        ),
        (
            '{"livekit": {"url": 7880, "api_key": "k", "api_secret": "s"}}',
            "'livekit.url' is 7880 (a number); expected a non-empty string",
        ),
        (
            '{"livekit": {"url": "ftp://h:1", "api_key": "k", "api_secret": "s"}}',
            "expected a ws://, wss://, http:// or https:// URL",
        ),
        (
            '{"livekit": {"url": "ws://h:99999", "api_key": "k", "api_secret": "s"}}',
            "has an invalid port",
        ),
        (
            '{"livekit": {"url": "ws://h:1", "api_key": "k", "api_secret": "s"}, "duraton_s": 5}',
            "unknown field 'duraton_s'",
        ),
        (
            '{"livekit": {"url": "ws://h:1", "api_key": "k", "api_secret": "s"},'
            ' "duration_s": "5"}',
            "'duration_s' is '5' (a string); expected a number",
        ),
        (
            '{"livekit": {"url": "ws://h:1", "api_key": "k", "api_secret": "s"}, "duration_s": -1}',
            "'duration_s' is -1.0; expected seconds in (0, 86400]",
        ),
        (
            '{"livekit": {"url": "ws://h:1", "api_key": "k", "api_secret": "s"},'
            ' "join_ramp_s": -1}',
            "'join_ramp_s' is -1.0; expected seconds in [0, 3600]",
        ),
        (
            '{"livekit": {"url": "ws://h:1", "api_key": "k", "api_secret": "s"}, "mode": "talk"}',
            "'mode' is 'talk'; expected 'turns' or 'duplex'",
        ),
        (
            '{"livekit": {"url": "ws://h:1", "api_key": "k", "api_secret": "s"}, "pairs": true}',
            "'pairs' is true (a boolean); expected an integer",
        ),
        (
            '{"livekit": {"url": "ws://h:1", "api_key": "k", "api_secret": "s"}, "red": "no"}',
            "'red' is 'no' (a string); expected true or false",
        ),
        (
            '{"livekit": {"url": "ws://h:1", "api_key": "k", "api_secret": "s"},'
            ' "tones": {"support_hz": 440}}',
            "at least 50 Hz away from tones.customer_hz",
        ),
        (
            '{"livekit": {"url": "ws://h:1", "api_key": "k", "api_secret": "s"},'
            ' "burst": {"period_s": 0.5}}',
            "'burst.period_s' is 0.5; expected at least 2 x (burst.duration_s + 0.1 s)",
        ),
        (
            '{"livekit": {"url": "ws://h:1", "api_key": "k", "api_secret": "s"},'
            ' "thresholds": [1]}',
            "'thresholds' is a list; expected an object",
        ),
    ],
)
def test_bad_config_says_what_and_where(text: str, expected: str) -> None:
    """Each mistake raises ConfigError with one sentence naming the field and what was expected."""
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="my.json", env={})
    message = str(info.value)
    assert expected in message
    assert message.startswith("my.json")
    assert message.endswith(".")
    assert "\n" not in message
    assert isinstance(info.value, PipelineError)


def test_wrong_typed_secret_is_not_echoed() -> None:
    """A malformed api_secret is named, never shown."""
    with pytest.raises(ConfigError) as info:
        from_dict({"livekit": {**LIVEKIT, "api_secret": 123456789}})
    assert "123456789" not in str(info.value)
    assert "'livekit.api_secret' is a number" in str(info.value)


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    """A missing file or a folder in its place is one sentence too."""
    with pytest.raises(ConfigError, match=r"does not exist; pass --config PATH\.$"):
        load_config(tmp_path / "nope.json")
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


def test_replace_validates_again() -> None:
    """A command-line change goes through the same checks."""
    c = from_dict({"livekit": LIVEKIT})
    assert c.replace(mode="duplex").mode == "duplex"
    with pytest.raises(ConfigError, match="'pairs' is 0"):
        c.replace(pairs=0)
    assert isinstance(c, Config)
