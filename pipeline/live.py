"""Statistics as the run goes: counters, whether the expected tone is heard, live view, table.

`Counters` are what one agent sent and received (frames, PCM bytes at 960 per 10 ms frame,
bursts); `ToneMeter` runs `dsp.GoertzelStream` over what an agent hears and says whether the other
agent's tone is in it; `LiveView` shows both directions every second (a progress bar on a
terminal, a log line every few seconds otherwise); `statistics_table` is the final table.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import numpy as np
import numpy.typing as npt
from loguru import logger

import dsp

SAMPLE_RATE = 48_000
BLOCK = 480
# A tone counts as heard when its amplitude is at least this share of full scale in a 10 ms block
# and it is clearly stronger than the listener's own tone (the two must not be confused).
_HEARD_AMPLITUDE = 0.05
_OWN_TONE_MARGIN = 4.0
# The live view says "heard" while the tone was heard within this many seconds.
_RECENT_S = 1.5
# The meter analyses this many samples at once (100 ms).
_BATCH_SAMPLES = 4800


class ToneMeter:
    """Counts the 10 ms blocks in which `expected_hz` is heard (and not `own_hz`).

    Samples are analysed 100 ms at a time: the detector's cost is mostly per call, and the live
    view needs no finer grain. `flush()` analyses what is left (at the end of a recording).
    """

    def __init__(self, expected_hz: float, own_hz: float) -> None:
        self.expected_hz = expected_hz
        self.blocks = 0
        self.heard_blocks = 0
        self.last_heard_ns: int | None = None
        self._stream = dsp.GoertzelStream(SAMPLE_RATE, [expected_hz, own_hz], block=BLOCK)
        self._floor = _HEARD_AMPLITUDE**2 * _reference_power(expected_hz)
        self._pending: list[npt.NDArray[np.int16]] = []
        self._pending_samples = 0
        self._pending_ns = 0

    def feed(self, pcm: npt.NDArray[np.int16], t_ns: int) -> None:
        """Add received samples that arrived at monotonic `t_ns`."""
        self._pending.append(pcm)
        self._pending_samples += len(pcm)
        self._pending_ns = t_ns
        if self._pending_samples >= _BATCH_SAMPLES:
            self.flush()

    def flush(self) -> None:
        """Analyse every sample fed so far."""
        if not self._pending:
            return
        audio = np.concatenate(self._pending)
        self._pending, self._pending_samples = [], 0
        powers = np.asarray(self._stream.process(audio))
        if powers.size == 0:
            return
        expected, own = powers[:, 0], powers[:, 1]
        heard = (expected >= self._floor) & (expected >= _OWN_TONE_MARGIN * own)
        self.blocks += len(powers)
        n = int(heard.sum())
        if n:
            self.heard_blocks += n
            self.last_heard_ns = self._pending_ns

    @property
    def heard_s(self) -> float:
        """Seconds of audio in which the expected tone was heard."""
        return self.heard_blocks * BLOCK / SAMPLE_RATE

    def hearing(self, now_ns: int) -> bool:
        """True when the expected tone was heard in the last 1.5 s."""
        last = self.last_heard_ns
        return last is not None and now_ns - last <= _RECENT_S * 1e9


def _reference_power(freq_hz: float) -> float:
    """The detector's power for a full-scale int16 tone at `freq_hz`, whatever its normalisation."""
    t = np.arange(BLOCK * 4) / SAMPLE_RATE
    tone = np.round(32767 * np.sin(2 * np.pi * freq_hz * t)).astype(np.int16)
    powers = np.asarray(dsp.GoertzelStream(SAMPLE_RATE, [freq_hz], block=BLOCK).process(tone))
    return float(np.median(powers[:, 0]))


@dataclass
class MeterReading:
    """What a `ToneMeter` in another process said last (the parent's view of a worker's agent)."""

    expected_hz: float
    heard_s: float
    last_heard_ns: int | None

    def hearing(self, now_ns: int) -> bool:
        """True when the expected tone was heard in the last 1.5 s (monotonic ns is system-wide)."""
        last = self.last_heard_ns
        return last is not None and now_ns - last <= _RECENT_S * 1e9


_COUNTS = (
    "frames_sent",
    "bytes_sent",
    "bursts_sent",
    "frames_received",
    "bytes_received",
    "samples_received",
    "first_sent_ns",
    "last_sent_ns",
    "last_received_ns",
)


@dataclass
class Counters:
    """What one agent sent and received so far (PCM bytes: 2 per sample, 960 per 10 ms frame)."""

    frames_sent: int = 0
    bytes_sent: int = 0
    bursts_sent: int = 0
    frames_received: int = 0
    bytes_received: int = 0
    samples_received: int = 0
    first_sent_ns: int | None = None
    last_sent_ns: int | None = None
    last_received_ns: int | None = None
    meter: ToneMeter | MeterReading | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able numbers, with the meter's reading (for a worker's progress report)."""
        out: dict[str, Any] = {name: getattr(self, name) for name in _COUNTS}
        m = self.meter
        if m is not None:
            out["meter"] = [m.expected_hz, m.heard_s, m.last_heard_ns]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Counters:
        """The counters `to_dict` described."""
        meter = data.get("meter")
        return cls(
            **{name: data[name] for name in _COUNTS},
            meter=None if meter is None else MeterReading(*meter),
        )

    @property
    def frames_processed(self) -> int:
        """Frames this agent handled: sent plus received."""
        return self.frames_sent + self.frames_received

    @property
    def heard_s(self) -> float:
        """Seconds in which this agent heard the other's tone."""
        return 0.0 if self.meter is None else self.meter.heard_s


@dataclass
class PairView:
    """One conversation as the live view sees it: a label and each agent's counters."""

    label: str
    customer: Counters
    support: Counters


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


def _direction(sender: Counters, receiver: Counters, now_ns: int) -> str:
    meter = receiver.meter
    hz = "" if meter is None else f"{meter.expected_hz:g} Hz "
    heard = meter is not None and meter.hearing(now_ns)
    return (
        f"sent {sender.frames_sent} fr/{_mb(sender.bytes_sent)} "
        f"recv {receiver.frames_received} fr/{_mb(receiver.bytes_received)} "
        f"{hz}{'heard' if heard else 'silent'}"
    )


def live_line(pair: PairView, now_ns: int) -> str:
    """Both directions of one conversation in one line."""
    return (
        f"C->S {_direction(pair.customer, pair.support, now_ns)} | "
        f"S->C {_direction(pair.support, pair.customer, now_ns)}"
    )


# The progress line drawn on a terminal right now, if any: log output clears it first.
_drawn_on: TextIO | None = None


def clear_progress() -> None:
    """Erase the progress line (a log line is about to be written; the next redraw restores it)."""
    global _drawn_on
    if _drawn_on is not None:
        _drawn_on.write("\r\x1b[2K")
        _drawn_on = None


class LiveView:
    """Shows progress every second until cancelled; `start_ns`/`duration_s` set by `begin()`."""

    def __init__(
        self,
        pairs: Sequence[PairView],
        *,
        stream: TextIO | None = None,
        tty: bool | None = None,
        log_every_s: float = 5.0,
    ) -> None:
        self.pairs = pairs
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty() if tty is None else tty
        self._log_every_s = log_every_s
        self._start_ns: int | None = None
        self._duration_s = 0.0
        self._drawn = False

    def begin(self, start_ns: int, duration_s: float) -> None:
        """The conversation starts at monotonic `start_ns` and lasts `duration_s`."""
        self._start_ns = start_ns
        self._duration_s = duration_s

    async def run(self) -> None:
        """Redraw every second; the owner cancels this task and then calls `finish()`."""
        last_log = 0.0
        while True:
            await asyncio.sleep(1.0)
            if self._start_ns is None:
                continue
            now = time.monotonic_ns()
            elapsed = max(0.0, (now - self._start_ns) / 1e9)
            if self._tty:
                self._draw(elapsed, now)
            elif elapsed - last_log >= self._log_every_s:
                last_log = elapsed
                for pair in self.pairs:
                    logger.info(
                        "{} {:.0f}/{:.0f} s: {}",
                        pair.label,
                        elapsed,
                        self._duration_s,
                        live_line(pair, now),
                    )

    def _draw(self, elapsed: float, now_ns: int) -> None:
        total = max(self._duration_s, 1e-9)
        share = min(1.0, elapsed / total)
        bar = "#" * round(share * 20) + "." * (20 - round(share * 20))
        left = max(0.0, total - elapsed)
        head = f"[{bar}] {elapsed:4.0f}/{total:.0f} s ({left:.0f} s left)"
        if len(self.pairs) == 1:
            body = live_line(self.pairs[0], now_ns)
        else:
            frames = sum(p.customer.frames_received + p.support.frames_received for p in self.pairs)
            heard = sum(
                1
                for p in self.pairs
                for c in (p.customer, p.support)
                if c.meter is not None and c.meter.hearing(now_ns)
            )
            body = f"{len(self.pairs)} pairs, {frames} frames received, {heard} directions heard"
        global _drawn_on
        line = head + " " + body
        if self._stream.isatty():  # one terminal line, or the carriage return cannot redraw it
            line = line[: shutil.get_terminal_size().columns - 1]
        self._stream.write("\r\x1b[2K" + line)
        self._stream.flush()
        self._drawn = True
        _drawn_on = self._stream

    def finish(self) -> None:
        """End the progress line (on a terminal) so later output starts on a fresh line."""
        global _drawn_on
        _drawn_on = None
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = False


def statistics_table(run_id: str, status: str, customer: Counters, support: Counters) -> str:
    """The final statistics of one run, one direction per row; tests parse it, keep it stable."""
    rows = [
        ("customer -> support", customer, support),
        ("support -> customer", support, customer),
    ]
    head = (
        f"{'direction':<20}{'frames_sent':>12}{'bytes_sent':>12}{'frames_recv':>12}"
        f"{'bytes_recv':>12}{'bursts_sent':>12}{'tone_heard_s':>13}"
    )
    lines = [f"run {run_id}: {status}", head]
    for name, sender, receiver in rows:
        lines.append(
            f"{name:<20}{sender.frames_sent:>12}{sender.bytes_sent:>12}"
            f"{receiver.frames_received:>12}{receiver.bytes_received:>12}"
            f"{sender.bursts_sent:>12}{receiver.heard_s:>13.2f}"
        )
    lines.append(f"{'agent':<20}{'frames_processed':>16}")
    for name, c in (("customer", customer), ("support", support)):
        lines.append(f"{name:<20}{c.frames_processed:>16}")
    total = sum(c.bytes_sent + c.bytes_received for c in (customer, support))
    lines.append(f"total PCM bytes: {total} ({_mb(total)})")
    return "\n".join(lines)


def proof_table(report: dict[str, Any]) -> str:
    """What the signed report found, one direction per row; tests parse it, keep it stable."""
    head = (
        f"{'direction':<20}{'bursts':>9}{'lost':>6}{'snr_db':>8}{'pkt_loss_%':>11}"
        f"{'lat_median_ms':>14}{'lat_p95_ms':>11}{'lat_max_ms':>11}"
    )
    lines = [head]
    for d in report.get("directions", []):
        latency = d.get("latency_ms") or {}
        rtc = d.get("rtc") or {}

        def num(value: Any, spec: str) -> str:
            return "-" if value is None else format(value, spec)

        lines.append(
            f"{d['from'] + ' -> ' + d['to']:<20}"
            f"{str(d.get('bursts_detected')) + '/' + str(d.get('bursts_sent')):>9}"
            f"{num(d.get('bursts_lost'), 'd'):>6}{num(d.get('snr_db'), '.1f'):>8}"
            f"{num(rtc.get('packet_loss_pct'), '.2f'):>11}"
            f"{num(latency.get('median'), '.1f'):>14}{num(latency.get('p95'), '.1f'):>11}"
            f"{num(latency.get('max'), '.1f'):>11}"
        )
    return "\n".join(lines)
