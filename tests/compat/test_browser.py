"""The JS SDK (livekit-client) in headless Chromium against the embedded server.

Runs with ``nox -s compat``, which installs Chromium and compat/node_modules; skipped elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from livekit import api, rtc

from echoproof import sfu
from tests.compat._chromium import COMPAT, NODE, REQUIRED, missing
from tests.conftest import scaled
from tests.echoproof.sfu._clients import API_KEY, API_SECRET, Listener, ToneSender, joined, until

ROOM = "compat"
PEER = "python-tone"
BROWSER = "browser"
TONE_HZ = 440.0


def _missing() -> str | None:
    """Why the browser test cannot run here, or None."""
    return missing("livekit-client", "playwright-core")


pytestmark = pytest.mark.skipif(_missing() is not None and not REQUIRED, reason=_missing() or "")


class Browser:
    """compat/driver.mjs as a subprocess: the page's events, one JSON object a line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: list[dict[str, Any]] = []
        self._reader = asyncio.create_task(self._read(), name="browser events")

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            with contextlib.suppress(json.JSONDecodeError):
                self.events.append(json.loads(line))

    def event(self, name: str) -> dict[str, Any] | None:
        """The first event called ``name`` so far."""
        return next((e for e in self.events if e.get("event") == name), None)

    async def wait(self, name: str, within_s: float) -> dict[str, Any]:
        """The first event called ``name``; fails at once with the page's error if it had one."""

        def seen() -> bool:
            failed = self.event("error")
            if failed is not None:
                raise AssertionError(f"the browser page failed: {failed['text']}\n{self.events}")
            if self.proc.returncode is not None and self.event(name) is None:
                raise AssertionError(f"the browser driver exited early: {self.events}")
            return self.event(name) is not None

        try:
            await until(seen, within_s)
        except TimeoutError:
            raise AssertionError(f"no {name!r} from the browser in time: {self.events}") from None
        event = self.event(name)
        assert event is not None
        return event


@contextlib.asynccontextmanager
async def browser(params: dict[str, Any]) -> AsyncIterator[Browser]:
    """Headless Chromium running compat/page.js with ``params``; closed on exit."""
    assert NODE is not None
    proc = await asyncio.create_subprocess_exec(
        NODE,
        str(COMPAT / "driver.mjs"),
        json.dumps(params),
        cwd=COMPAT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        start_new_session=True,  # its own process group: Chromium goes with it if it must be killed
    )
    b = Browser(proc)
    try:
        yield b
    finally:
        assert proc.stdin is not None
        proc.stdin.close()  # the driver closes Chromium when its stdin ends
        try:
            async with asyncio.timeout(scaled(15)):
                await proc.wait()
        except TimeoutError:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
        await b._reader


def browser_token(room: str) -> str:
    """A join token for the browser, allowed to set its own metadata."""
    grants = api.VideoGrants(room_join=True, room=room, can_update_own_metadata=True)
    t = api.AccessToken(API_KEY, API_SECRET).with_identity(BROWSER).with_name(BROWSER)
    return t.with_grants(grants).to_jwt()


async def test_js_sdk_in_chromium_hears_speaks_sets_metadata_and_receives_data() -> None:
    """livekit-client in headless Chromium and a Python participant hear each other, and more."""
    assert _missing() is None, _missing()
    async with (
        sfu.serve(host="127.0.0.1", port=0, api_key=API_KEY, api_secret=API_SECRET) as server,
        joined(server.url, PEER, ROOM) as room,
        ToneSender(room, TONE_HZ),
        Listener(room, BROWSER) as listener,
    ):
        metadata: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def on_metadata(who: rtc.Participant, old: str, new: str) -> None:
            if who.identity == BROWSER and not metadata.done():
                metadata.set_result(new)

        room.on("participant_metadata_changed", on_metadata)
        params = {
            "url": server.url,
            "token": browser_token(ROOM),
            "peer": PEER,
            "metadata": '{"from": "chromium"}',
            "listenMs": 3000,
        }
        async with browser(params) as page:
            await page.wait("joined", 60)
            await page.wait("published", 20)
            await page.wait("subscribed", 20)

            # The browser hears the Python participant's tone.
            heard = await page.wait("heard", 30)
            assert heard["packets"] > 100, heard  # 3 s of 20 ms packets is 150
            assert heard["samples"] > 48000, heard  # over a second of audio decoded in 3 s
            assert heard["rms"] > 0.05, heard  # the tone is sent at half of full scale
            assert abs(heard["peakHz"] - TONE_HZ) <= 2 * heard["binHz"], heard

            # Python hears the browser's fake microphone (Chromium's beep).
            await listener.subscribed.wait()
            await until(lambda: _loud_frames(listener) >= 10, 20)

            # The browser's setMetadata reaches the Python participant.
            done = await page.wait("metadata", 15)
            assert done["ok"], done
            async with asyncio.timeout(scaled(10)):
                assert await metadata == '{"from": "chromium"}'

            # A data packet from Python reaches the page, attributed to the sender.
            await page.wait("ready-for-data", 10)
            await room.local_participant.publish_data(b"hello browser", topic="compat")
            data = await page.wait("data", 15)
            assert data == {
                "event": "data",
                "text": "hello browser",
                "from": PEER,
                "topic": "compat",
            }


def _loud_frames(listener: Listener) -> int:
    """How many frames heard from the browser carry sound (RMS above -40 dBFS)."""
    return sum(
        float(np.sqrt(np.mean((f.astype(np.float64) / 32768) ** 2))) > 0.01
        for f in list(listener.frames)
    )
