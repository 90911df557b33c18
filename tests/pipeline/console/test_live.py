"""Live statistics: the tone meter, the live view and the final table."""

from __future__ import annotations

import asyncio
import io
import re
import time

import numpy as np
from loguru import logger

import dsp
from echoproof.aiotasks import cancel_and_wait
from pipeline.console.live import (
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


def _hour_pair() -> PairView:
    """A pair an hour into a run (the widest figures the view shows), its meters fed a burst."""
    customer = Counters(
        frames_sent=360_000,
        bytes_sent=345_600_000,
        bursts_sent=3600,
        frames_received=359_990,
        bytes_received=345_590_400,
        meter=ToneMeter(550.0, 440.0),
    )
    support = Counters(
        frames_sent=360_000,
        bytes_sent=345_600_000,
        bursts_sent=3599,
        frames_received=359_980,
        bytes_received=345_580_800,
        meter=ToneMeter(440.0, 550.0),
    )
    assert isinstance(support.meter, ToneMeter)
    _feed(support.meter, dsp.burst(440.0, 0.3))
    return PairView("20261130T085507Z-1a2b3c4d", customer, support)


async def _run_view(view: LiveView, seconds: float) -> None:
    task = asyncio.create_task(view.run())
    await asyncio.sleep(seconds)
    await cancel_and_wait(task)


def test_meter_counts_bursts_heard() -> None:
    """Each burst counts once, even with a 50 ms dropout inside it, and silence counts none."""
    silence = np.zeros(24000, dtype=np.int16)
    burst = dsp.burst(440.0, 0.3)
    broken = burst.copy()
    broken[4800:7200] = 0  # 50 ms lost inside the burst
    meter = ToneMeter(440.0, 550.0)
    _feed(meter, np.concatenate([silence, burst, silence, broken, silence]))
    assert meter.bursts_heard == 2
    restored = Counters.from_dict(Counters(meter=meter).to_dict())
    assert restored.bursts_heard == 2 and restored.heard_s == meter.heard_s


def test_live_view_fits_80_columns_with_every_figure() -> None:
    """At 80 columns an hour-long run shows every figure of both directions, no line longer."""
    pair = _hour_pair()
    view = LiveView([pair], stream=io.StringIO(), tty=True)
    view.begin(time.monotonic_ns(), 3600.0)
    view.tick(time.monotonic_ns())  # a second ago: what was sent by then
    lines = view.lines(1800.0, view.tick(time.monotonic_ns()))
    assert all(len(line) < 80 for line in lines), [len(line) for line in lines]
    assert re.fullmatch(
        r"\[#{10}\.{10}\] 1800/3600 s \(1800 s left\)  20261130T085507Z-1a2b3c4d", lines[0]
    )
    assert lines[1].split() == [
        "sent",
        "fr",
        "MB",
        "heard",
        "fr",
        "MB",
        "bursts",
        "sent",
        "heard",
        "lost",
        "tone",
    ]
    # direction, frames sent, MB sent, frames heard, MB heard, bursts sent, heard, lost, tone
    assert lines[2].split() == [
        "C->S",
        "360000",
        "345.60",
        "359980",
        "345.58",
        "3600",
        "1",
        "3599",
        "440",
        "Hz",
        "heard",
    ]
    assert lines[3].split() == [
        "S->C",
        "360000",
        "345.60",
        "359990",
        "345.59",
        "3599",
        "0",
        "3599",
        "550",
        "Hz",
        "silent",
    ]


def test_live_view_sums_many_pairs() -> None:
    """With several pairs the rows are sums and the tone column says how many receivers hear."""
    pairs = [_hour_pair(), _hour_pair()]
    view = LiveView(pairs, stream=io.StringIO(), tty=True)
    lines = view.lines(10.0, view.tick(time.monotonic_ns()))
    assert lines[0].endswith("2 pairs, summed")
    assert lines[2].split() == [
        "C->S",
        "720000",
        "691.20",
        "719960",
        "691.16",
        "7200",
        "2",
        "0",
        "2/2",
        "heard",
    ]
    assert all(len(line) < 80 for line in lines)


async def test_live_view_redraws_in_place_on_a_terminal() -> None:
    """On a terminal the view redraws its lines in place; a log line erases them first."""
    out = io.StringIO()
    pair = PairView("RID", Counters(frames_sent=100, bytes_sent=96000), Counters())
    view = LiveView([pair], stream=out, tty=True)
    view.begin(time.monotonic_ns(), 10.0)
    await _run_view(view, 2.3)
    text = out.getvalue()
    assert text.count("\x1b[3A\x1b[J") == 1  # the second drawing went back over the first
    assert re.search(r"\[#*\.+\]\s+2/10 s \(8 s left\)  RID\n", text)
    assert re.search(r"C->S\s+100\s+0\.10\s+0\s+0\.00\s+0\s+0\s+0\s+silent", text)
    clear_progress()  # what a log line does first: erase the view
    assert out.getvalue().endswith("\r\x1b[3A\x1b[J")
    view.finish()
    assert not out.getvalue().endswith("\n")  # erased: the next output starts where it began
    await _run_view(view, 1.2)
    view.finish()
    assert out.getvalue().endswith("silent\n")  # drawn again, then left on its own lines


async def test_live_view_without_a_terminal_logs_a_plain_line() -> None:
    """Without a terminal the view logs one plain line per pair with every figure, no escapes."""
    out = io.StringIO()
    lines: list[str] = []
    sink = logger.add(lines.append, format="{message}", level="INFO")
    try:
        view = LiveView([_hour_pair()], stream=out, tty=False, log_every_s=1.0)
        view.begin(time.monotonic_ns(), 3600.0)
        await _run_view(view, 1.3)
    finally:
        logger.remove(sink)
    assert out.getvalue() == ""
    (line,) = (line.rstrip("\n") for line in lines)
    assert line.startswith("20261130T085507Z-1a2b3c4d 1/3600 s: ")
    assert (
        "C->S sent 360000 fr/345.60 MB heard 359980 fr/345.58 MB bursts 1/3600 lost 0 "
        "440 Hz heard | S->C sent 360000 fr/345.60 MB heard 359990 fr/345.59 MB "
        "bursts 0/3599 lost 0 550 Hz silent"
    ) in line
