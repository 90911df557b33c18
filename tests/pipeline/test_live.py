"""Live statistics: the tone meter, the live view and the final table."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import time

import numpy as np

import dsp
from pipeline.live import (
    Counters,
    LiveView,
    PairView,
    ToneMeter,
    clear_progress,
    statistics_table,
)


def _feed(meter: ToneMeter, audio: np.ndarray) -> None:
    for start in range(0, len(audio), 480):
        meter.feed(audio[start : start + 480], time.monotonic_ns())
    meter.flush()


def test_meter_hears_the_other_tone_only() -> None:
    """A 440 Hz burst counts as heard for about its length; the listener's own tone never does."""
    silence = np.zeros(4800, dtype=np.int16)
    heard = ToneMeter(440.0, 550.0)
    _feed(heard, np.concatenate([silence, dsp.burst(440.0, 0.3), silence]))
    assert 0.27 <= heard.heard_s <= 0.31
    assert heard.hearing(time.monotonic_ns())
    own = ToneMeter(440.0, 550.0)
    _feed(own, np.concatenate([silence, dsp.burst(550.0, 0.3), silence]))
    assert own.heard_s == 0.0
    quiet = ToneMeter(440.0, 550.0)
    _feed(quiet, (dsp.burst(440.0, 0.3, amplitude=0.01)))
    assert quiet.heard_s == 0.0
    assert not quiet.hearing(time.monotonic_ns())


def test_statistics_table_is_stable() -> None:
    """The final table lists both directions, frames processed and total PCM bytes."""
    cu = Counters(
        frames_sent=600,
        bytes_sent=576000,
        bursts_sent=5,
        frames_received=610,
        bytes_received=585600,
    )
    su = Counters(
        frames_sent=600,
        bytes_sent=576000,
        bursts_sent=5,
        frames_received=605,
        bytes_received=580800,
    )
    text = statistics_table("RID", "complete", cu, su)
    lines = text.splitlines()
    assert lines[0] == "run RID: complete"
    assert re.fullmatch(r"customer -> support\s+600\s+576000\s+605\s+580800\s+5\s+0\.00", lines[2])
    assert re.fullmatch(r"support -> customer\s+600\s+576000\s+610\s+585600\s+5\s+0\.00", lines[3])
    assert re.fullmatch(r"customer\s+1210", lines[5])
    assert lines[-1] == f"total PCM bytes: {576000 * 2 + 585600 + 580800} (2.32 MB)"


async def test_live_view_draws_progress_on_a_terminal() -> None:
    """On a terminal the view redraws one progress line a second with both directions."""
    out = io.StringIO()
    pair = PairView("RID", Counters(frames_sent=100, bytes_sent=96000), Counters())
    view = LiveView([pair], stream=out, tty=True)
    view.begin(time.monotonic_ns(), 10.0)
    task = asyncio.create_task(view.run())
    await asyncio.sleep(1.3)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    clear_progress()  # what a log line does first: erase the bar
    assert out.getvalue().endswith("\r\x1b[2K")
    view.finish()
    text = out.getvalue()
    assert "\r" in text and text.endswith("\n")
    assert re.search(r"\[#*\.+\]\s+1/10 s \(9 s left\) C->S sent 100 fr/0\.10 MB recv 0", text)
    assert "S->C sent 0 fr" in text
