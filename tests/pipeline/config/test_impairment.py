"""The `impairment` block of the config: validation, the recorded form, and a server the run did
not start refusing it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import from_dict
from pipeline.config.impairment import Impairments, LinkImpairment
from pipeline.errors import ConfigError
from tests.conftest import scaled
from tests.pipeline.conftest import LiveServer, run_cli, write_config

LIVEKIT = {"url": "ws://127.0.0.1:7880", "api_key": "devkey", "api_secret": "secret"}


def _impairment(block: Any) -> Impairments | None:
    return from_dict({"livekit": LIVEKIT, "impairment": block}).impairment


def test_block_applies_to_both_directions_and_overrides_per_direction() -> None:
    """Top-level fields set both directions; a direction's block replaces only what it names."""
    imp = _impairment(
        {
            "delay_ms": 40,
            "loss_pct": 2.5,
            "seed": 7,
            "outages": [[2, 3]],
            "support_to_customer": {"outages": [], "jitter_ms": 10},
        }
    )
    assert imp is not None
    assert imp.customer_to_support == LinkImpairment(40.0, 0.0, 2.5, 7, ((2.0, 3.0),))
    assert imp.support_to_customer == LinkImpairment(40.0, 10.0, 2.5, 7, ())
    assert not imp.is_none


def test_recorded_in_the_public_config() -> None:
    """The effective setting of each direction is in `public()` (the manifest's config)."""
    c = from_dict({"livekit": LIVEKIT, "impairment": {"customer_to_support": {"loss_pct": 1}}})
    recorded = c.public()["impairment"]
    assert recorded == {
        "customer_to_support": {
            "delay_ms": 0.0,
            "jitter_ms": 0.0,
            "loss_pct": 1.0,
            "seed": 0,
            "outages": [],
        },
        "support_to_customer": {
            "delay_ms": 0.0,
            "jitter_ms": 0.0,
            "loss_pct": 0.0,
            "seed": 0,
            "outages": [],
        },
    }
    assert from_dict({"livekit": LIVEKIT}).public()["impairment"] is None
    assert _impairment({}) == Impairments() and Impairments().is_none
    assert Impairments.from_json(c.impairment.to_json()) == c.impairment  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ([1, 2], "'impairment' is a list; expected an object."),
        ({"loss": 5}, "unknown field 'impairment.loss'; expected one of 'impairment.delay_ms'"),
        ({"loss_pct": 150}, "'impairment.loss_pct' is 150 (a number); expected percent from 0"),
        ({"delay_ms": -1}, "'impairment.delay_ms' is -1 (a number); expected milliseconds"),
        ({"jitter_ms": "5"}, "'impairment.jitter_ms' is '5' (a string); expected milliseconds"),
        ({"seed": 1.5}, "'impairment.seed' is 1.5 (a number); expected an integer >= 0."),
        ({"outages": [[2, 0]]}, "'impairment.outages[0]' is [2, 0]; expected [start_s, dur"),
        ({"outages": [2, 3]}, "'impairment.outages[0]' is 2; expected [start_s, duration_s]"),
        ({"outages": {"2": 3}}, "'impairment.outages' is an object; expected a list of"),
        (
            {"customer_to_support": {"support_to_customer": {}}},
            "unknown field 'impairment.customer_to_support.support_to_customer'",
        ),
        (
            {"support_to_customer": {"loss_pct": True}},
            "'impairment.support_to_customer.loss_pct' is true (a boolean); expected percent",
        ),
    ],
)
def test_bad_block_is_one_sentence(block: Any, expected: str) -> None:
    """Each mistake names the field, what was found and what was expected."""
    with pytest.raises(ConfigError) as info:
        _impairment(block)
    message = str(info.value)
    assert message.startswith("config.json: ") or message.startswith("config.json has ")
    assert expected in message and message.endswith(".") and "\n" not in message


async def test_external_server_refuses_impairment(server: LiveServer, tmp_path: Path) -> None:
    """Impairment asked of a server the run did not start: exit 2, one sentence, no run folder."""
    config = write_config(
        tmp_path / "c.json",
        server.url,
        server.api_key,
        server.api_secret,
        impairment={"loss_pct": 5},
    )
    out = tmp_path / "r"
    done = await run_cli("--config", str(config), "--out", str(out), limit_s=scaled(30))
    assert done.code == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        f"error: {config}: 'impairment' needs the embedded server, but {server.url} is an "
        "external server (not started by this run); remove 'impairment' or set livekit.url to a "
        "free loopback port."
    ]
    assert "Traceback" not in done.stderr
    assert not out.exists() or not any(out.iterdir())
    assert json.dumps(server.api_secret) not in done.stderr
