"""The `red` setting decides what the agents negotiate: a real server, real agents."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from echoproof import sfu
from pipeline import capture
from pipeline.config import from_dict
from tests.conftest import scaled

KEY, SECRET = "redtests", "red-test-secret-0123456789abcdef0123"


def _negotiated(server: sfu.Server) -> dict[str, tuple[bool, bool]]:
    """Per listening agent: (its forwarded stream goes out as RED, the track came in as RED)."""
    seen = {}
    for room in list(server.rooms.values()):
        for identity in list(room.participants):
            connection = server.connection(room.name, identity)
            if connection is None:
                continue
            for fanout, sink in list(connection.subscriptions.values()):
                seen[identity] = (sink.red_out, bool(fanout.payload_types("red")))
    return seen


async def test_red_setting_changes_what_is_negotiated(tmp_path: Path) -> None:
    """red true: both directions go through the server as RED; red false: plain Opus."""
    async with sfu.serve(host="127.0.0.1", port=0, api_key=KEY, api_secret=SECRET) as server:
        for red in (True, False):
            config = from_dict(
                {
                    "livekit": {"url": server.url, "api_key": KEY, "api_secret": SECRET},
                    "out_dir": str(tmp_path / str(red)),
                    "duration_s": 3,
                    "red": red,
                }
            )
            run = asyncio.create_task(capture(config))
            seen: dict[str, tuple[bool, bool]] = {}
            async with asyncio.timeout(scaled(60)):
                while not run.done():  # the last state each agent's stream had while talking
                    seen.update(_negotiated(server))
                    await asyncio.sleep(0.05)
                (outcome,) = await run
            assert outcome.status == "complete", outcome.reason
            assert sorted(seen.values()) == [(red, red), (red, red)], seen
            manifest = json.loads((outcome.run_dir / "manifest.json").read_text())
            assert manifest["config"]["red"] is red
