"""Statistics as the run goes: counters, whether the expected tone is heard, live view, table.

`Counters` are what one speaker sent and received (frames, PCM bytes at 960 per 10 ms frame,
bursts); `ToneMeter` runs `dsp.GoertzelStream` over what a speaker hears, says whether the other
side's tone is in it and counts the bursts heard; `LiveView` shows both directions every second
(a few lines redrawn in place on a terminal, within 80 columns; a log line every few seconds
otherwise); `statistics_table` is the final table.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import numpy as np
import numpy.typing as npt
from loguru import logger

import dsp
from echoproof.contract import FRAME_SAMPLES, ROLES, SAMPLE_RATE, other

# A tone counts as heard when its amplitude is at least this share of full scale in a 10 ms block
# and it is clearly stronger than the listener's own tone (the two must not be confused).
_HEARD_AMPLITUDE = 0.05
_OWN_TONE_MARGIN = 4.0
# The live view says "heard" while the tone was heard within this many seconds.
_RECENT_S = 1.5
# The meter analyses this many samples at once (100 ms).
_BATCH_SAMPLES = 10 * FRAME_SAMPLES
# A burst is heard anew after at least this many 10 ms blocks without the tone (a block lost
# inside a burst does not split it in two; bursts are normally 700 ms apart).
_ONSET_GAP_BLOCKS = 10
# A burst counts as lost when it was sent this long ago and is still not heard (the view's tick).
_LOST_AFTER_S = 1.0


class ToneMeter:
    """Counts the 10 ms blocks in which `expected_hz` is heard (and not `own_hz`), and the bursts:
    a burst is heard when the tone comes back after at least 100 ms without it.

    Samples are analysed 100 ms at a time: the detector's cost is mostly per call, and the live
    view needs no finer grain. `flush()` analyses what is left (at the end of a recording).
    """

    def __init__(self, expected_hz: float, own_hz: float) -> None:
        self.expected_hz = expected_hz
        self.blocks = 0
        self.heard_blocks = 0
        self.bursts_heard = 0
        self.last_heard_ns: int | None = None
        self._silent_blocks = _ONSET_GAP_BLOCKS  # since the tone was last heard
        self._stream = dsp.GoertzelStream(SAMPLE_RATE, [expected_hz, own_hz], block=FRAME_SAMPLES)
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
        at = np.flatnonzero(heard)
        if not at.size:
            self._silent_blocks += len(heard)
            return
        self.heard_blocks += len(at)
        self.last_heard_ns = self._pending_ns
        # Silent blocks before each heard one: from the batch before, then between heard ones.
        gaps = np.diff(at) - 1
        self.bursts_heard += int(self._silent_blocks + at[0] >= _ONSET_GAP_BLOCKS) + int(
            (gaps >= _ONSET_GAP_BLOCKS).sum()
        )
        self._silent_blocks = len(heard) - 1 - int(at[-1])

    @property
    def heard_s(self) -> float:
        """Seconds of audio in which the expected tone was heard."""
        return self.heard_blocks * FRAME_SAMPLES / SAMPLE_RATE

    def hearing(self, now_ns: int) -> bool:
        """True when the expected tone was heard in the last 1.5 s."""
        last = self.last_heard_ns
        return last is not None and now_ns - last <= _RECENT_S * 1e9


def _reference_power(freq_hz: float) -> float:
    """The detector's power for a full-scale int16 tone at `freq_hz`, whatever its normalisation."""
    t = np.arange(FRAME_SAMPLES * 4) / SAMPLE_RATE
    tone = np.round(32767 * np.sin(2 * np.pi * freq_hz * t)).astype(np.int16)
    powers = np.asarray(
        dsp.GoertzelStream(SAMPLE_RATE, [freq_hz], block=FRAME_SAMPLES).process(tone)
    )
    return float(np.median(powers[:, 0]))


@dataclass
class MeterReading:
    """What a `ToneMeter` in another process said last (the parent's view of a worker's speaker)."""

    expected_hz: float
    heard_s: float
    last_heard_ns: int | None
    bursts_heard: int = 0

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
    """What one speaker sent and received so far (PCM bytes: 2 per sample, 960 per 10 ms frame)."""

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
            out["meter"] = [m.expected_hz, m.heard_s, m.last_heard_ns, m.bursts_heard]
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
        """Frames this speaker handled: sent plus received."""
        return self.frames_sent + self.frames_received

    @property
    def heard_s(self) -> float:
        """Seconds in which this speaker heard the other's tone."""
        return 0.0 if self.meter is None else self.meter.heard_s

    @property
    def bursts_heard(self) -> int:
        """Bursts of the other's tone this speaker heard so far."""
        return 0 if self.meter is None else self.meter.bursts_heard


@dataclass
class PairView:
    """One conversation as the live view sees it: a label and each speaker's counters."""

    label: str
    customer: Counters
    support: Counters
    # An agent under test on the Support side: what it sent and heard is not ours to count.
    agent: bool = False


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


@dataclass
class Flow:
    """One direction of one conversation, or its sum over several, as the live view shows it."""

    name: str  # "C->S" or "S->C"
    frames_sent: int
    bytes_sent: int
    frames_heard: int
    bytes_heard: int
    bursts_sent: int
    bursts_heard: int
    bursts_lost: int  # sent at least a second ago and not heard
    hearing: int  # receivers that heard the tone in the last 1.5 s
    receivers: int
    hz: float | None  # the tone listened for, if known; None for a sum over conversations
    counted: tuple[bool, bool] = (True, True)  # (sent, heard): False for an agent under test

    def tone(self) -> str:
        """Whether the tone is heard now: "440 Hz heard", or "3/7 heard" for a sum."""
        if self.receivers != 1:
            return f"{self.hearing}/{self.receivers} heard"
        hz = "" if self.hz is None else f"{self.hz:g} Hz "
        return f"{hz}{'heard' if self.hearing else 'silent'}"

    def plain(self) -> str:
        """The direction in one line, units spelled out (for the log)."""
        if self.counted != (True, True):  # an agent under test: only our side is counted
            if self.counted[0]:
                return f"{self.name} sent {self.frames_sent} fr/{_mb(self.bytes_sent)}"
            return f"{self.name} heard {self.frames_heard} fr/{_mb(self.bytes_heard)} {self.tone()}"
        return (
            f"{self.name} sent {self.frames_sent} fr/{_mb(self.bytes_sent)} "
            f"heard {self.frames_heard} fr/{_mb(self.bytes_heard)} "
            f"bursts {self.bursts_heard}/{self.bursts_sent} lost {self.bursts_lost} {self.tone()}"
        )


def _flow(name: str, sender: Counters, receiver: Counters, now_ns: int, sent_before: int) -> Flow:
    meter = receiver.meter
    return Flow(
        name=name,
        frames_sent=sender.frames_sent,
        bytes_sent=sender.bytes_sent,
        frames_heard=receiver.frames_received,
        bytes_heard=receiver.bytes_received,
        bursts_sent=sender.bursts_sent,
        bursts_heard=receiver.bursts_heard,
        bursts_lost=max(0, sent_before - receiver.bursts_heard),
        hearing=int(meter is not None and meter.hearing(now_ns)),
        receivers=1,
        hz=None if meter is None else meter.expected_hz,
    )


def flows(pair: PairView, now_ns: int, sent_before: tuple[int, int] = (0, 0)) -> list[Flow]:
    """Both directions of `pair`; `sent_before` is each sender's `bursts_sent` a second ago
    (customer, support): those bursts are lost if still not heard."""
    if pair.agent:  # the Customer's side only: what it said, what it heard of the agent
        said = _flow("C->A", pair.customer, pair.support, now_ns, 0)
        heard = _flow("A->C", pair.support, pair.customer, now_ns, 0)
        said.counted, heard.counted = (True, False), (False, True)
        return [said, heard]
    return [
        _flow("C->S", pair.customer, pair.support, now_ns, sent_before[0]),
        _flow("S->C", pair.support, pair.customer, now_ns, sent_before[1]),
    ]


def _sum(name: str, parts: Iterable[Flow]) -> Flow:
    total = Flow(name, 0, 0, 0, 0, 0, 0, 0, 0, 0, None)
    for f in parts:
        total.frames_sent += f.frames_sent
        total.bytes_sent += f.bytes_sent
        total.frames_heard += f.frames_heard
        total.bytes_heard += f.bytes_heard
        total.bursts_sent += f.bursts_sent
        total.bursts_heard += f.bursts_heard
        total.bursts_lost += f.bursts_lost
        total.hearing += f.hearing
        total.receivers += f.receivers
    return total


def live_line(pair: PairView, now_ns: int, sent_before: tuple[int, int] = (0, 0)) -> str:
    """Both directions of one conversation in one line (the log's progress line)."""
    return " | ".join(f.plain() for f in flows(pair, now_ns, sent_before))


# The columns of the live view: every row fits 79 columns up to an hour of audio.
_ROW = "{:<4}{:>9}{:>8}{:>10}{:>8}{:>13}{:>6}{:>5}  {}"
_HEAD = _ROW.format("", "sent fr", "MB", "heard fr", "MB", "bursts sent", "heard", "lost", "tone")


def live_rows(directions: Sequence[Flow]) -> list[str]:
    """The table of the live view: a header and one row per direction."""

    def shown(counted: bool, *values: object) -> list[object]:
        return list(values) if counted else ["-"] * len(values)

    return [_HEAD] + [
        _ROW.format(
            f.name,
            *shown(f.counted[0], f.frames_sent, f"{f.bytes_sent / 1e6:.2f}"),
            *shown(f.counted[1], f.frames_heard, f"{f.bytes_heard / 1e6:.2f}"),
            *shown(f.counted[0], f.bursts_sent),
            *shown(all(f.counted), f.bursts_heard, f.bursts_lost),
            f.tone() if f.counted[1] else "-",
        )
        for f in directions
    ]


# The stream the live view has drawn on and how many lines: a log line erases them first.
_drawn_on: tuple[TextIO, int] | None = None


def _erase(lines: int) -> str:
    """Back to the start of the first of `lines` lines just drawn, and erase to the end."""
    return "\r" + (f"\x1b[{lines - 1}A" if lines > 1 else "") + "\x1b[J"


def clear_progress() -> None:
    """Erase the live view (a log line is about to be written; the next redraw restores it)."""
    global _drawn_on
    if _drawn_on is not None:
        stream, lines = _drawn_on
        stream.write(_erase(lines))
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
        # Each pair's bursts sent (customer, support) at the tick before: lost if still unheard.
        self._sent_before = [(0, 0)] * len(pairs)

    def begin(self, start_ns: int, duration_s: float) -> None:
        """The conversation starts at monotonic `start_ns` and lasts `duration_s`."""
        self._start_ns = start_ns
        self._duration_s = duration_s

    async def run(self) -> None:
        """Redraw every second; the owner cancels this task and then calls `finish()`."""
        last_log = 0.0
        while True:
            await asyncio.sleep(_LOST_AFTER_S)
            if self._start_ns is None:
                continue
            now = time.monotonic_ns()
            elapsed = max(0.0, (now - self._start_ns) / 1e9)
            per_pair = self.tick(now)
            if self._tty:
                self._draw(elapsed, per_pair)
            elif elapsed - last_log >= self._log_every_s:
                last_log = elapsed
                for pair, pair_flows in zip(self.pairs, per_pair, strict=True):
                    logger.info(
                        "{} {:.0f}/{:.0f} s: {}",
                        pair.label,
                        elapsed,
                        self._duration_s,
                        " | ".join(f.plain() for f in pair_flows),
                    )

    def tick(self, now_ns: int) -> list[list[Flow]]:
        """Every pair's directions now; bursts sent until now count as lost from the next tick."""
        per_pair = [flows(p, now_ns, b) for p, b in zip(self.pairs, self._sent_before, strict=True)]
        self._sent_before = [(p.customer.bursts_sent, p.support.bursts_sent) for p in self.pairs]
        return per_pair

    def lines(self, elapsed: float, per_pair: Sequence[Sequence[Flow]]) -> list[str]:
        """What the terminal shows: progress, then the table of both directions."""
        total = max(self._duration_s, 1e-9)
        share = min(1.0, elapsed / total)
        bar = "#" * round(share * 20) + "." * (20 - round(share * 20))
        left = max(0.0, total - elapsed)
        what = self.pairs[0].label if len(self.pairs) == 1 else f"{len(self.pairs)} pairs, summed"
        head = f"[{bar}] {elapsed:4.0f}/{total:.0f} s ({left:.0f} s left)  {what}"
        if len(per_pair) == 1:
            rows = per_pair[0]
        else:
            rows = [_sum(name, (p[i] for p in per_pair)) for i, name in enumerate(("C->S", "S->C"))]
        return [head, *live_rows(rows)]

    def _draw(self, elapsed: float, per_pair: Sequence[Sequence[Flow]]) -> None:
        global _drawn_on
        lines = self.lines(elapsed, per_pair)
        if self._stream.isatty():  # a wrapped line would break the cursor-up redraw
            width = shutil.get_terminal_size().columns - 1
            lines = [line[:width] for line in lines]
        before = _drawn_on[1] if _drawn_on is not None and _drawn_on[0] is self._stream else 1
        self._stream.write(_erase(before) + "\n".join(lines))
        self._stream.flush()
        _drawn_on = (self._stream, len(lines))

    def finish(self) -> None:
        """End the live view (on a terminal) so later output starts on a fresh line; a view a
        log line has just erased needs none."""
        global _drawn_on
        if _drawn_on is not None and _drawn_on[0] is self._stream:
            _drawn_on = None
            self._stream.write("\n")
            self._stream.flush()


def statistics_table(run_id: str, status: str, customer: Counters, support: Counters) -> str:
    """The final statistics of one run, one direction per row; tests parse it, keep it stable."""
    counters = dict(zip(ROLES, (customer, support), strict=True))
    rows = [(f"{r} -> {other(r)}", counters[r], counters[other(r)]) for r in ROLES]
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
    for name, c in counters.items():
        lines.append(f"{name:<20}{c.frames_processed:>16}")
    total = sum(c.bytes_sent + c.bytes_received for c in (customer, support))
    lines.append(f"total PCM bytes: {total} ({_mb(total)})")
    return "\n".join(lines)
