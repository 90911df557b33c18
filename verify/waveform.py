"""A recording as the page draws it: its envelope over the run's clock, where each moment of the
run lies in the file, and the marked regions (bursts, gaps, glitches, turns, barge-ins, stalls).

A received WAV holds the samples in the order they arrived, with nothing where nothing came: its
own time axis is not the run's. Each column of the page's waveform covers an equal stretch of
the run's clock; it holds the min and max of the frames that arrived in it, and `seek_s`, the
position in the file of the first sample that arrived from its start on (what a click there
plays). A sample's run time is its frame's arrival plus its offset (`verify.timing`, `raw`).
Derived from the report and the evidence, not evidence.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from dsp import source
from echoproof.contract import FRAME_SAMPLES
from verify import evidence as ev
from verify.figures import clock_origin
from verify.host import WINDOW_S
from verify.timing import NS_PER_S, frame_time_ns, no_frames

COLUMNS = 1000  # the page's waveform: min/max per column
LEVELS = 100  # an envelope value is an integer in -LEVELS..LEVELS: a small page


@dataclasses.dataclass(frozen=True)
class Region:
    """A marked stretch of the run: `start_s`, `end_s` on the run's clock."""

    kind: str  # burst, lost, gap, glitch, turn, answer, barge-in, stall, freeze
    label: str
    start_s: float
    end_s: float
    seek_s: float  # where it starts in the file: a click plays from here
    stop_s: float  # and where it ends
    ref: int | None = None  # the burst's or the turn's number


@dataclasses.dataclass(frozen=True)
class Stream:
    """One recording for the page: its file, its envelope and its regions."""

    title: str
    wav: str  # the file's name in the run folder: the page links it, nothing is copied
    duration_s: float  # of the file
    run_clock: bool  # the x axis is the run's clock (a received stream), else the file's own
    start_s: float  # the x axis' span
    end_s: float
    low: list[int]  # per column, the envelope (LEVELS is full scale)
    high: list[int]
    seek_s: list[float]  # per column, where in the file that moment of the run lies
    regions: list[Region]

    def as_json(self) -> dict[str, Any]:
        """What the page's script reads."""
        return {
            "start": self.start_s,
            "end": self.end_s,
            "low": self.low,
            "high": self.high,
            "seek": self.seek_s,
            "regions": [dataclasses.asdict(r) for r in self.regions],
        }


class _Clock:
    """A received stream's file positions and run times, from its arrivals."""

    def __init__(self, arrivals: ev.Timing, origin: int) -> None:
        self.arrivals = arrivals
        self.origin = origin
        self.frame_s = (arrivals.t_ns - origin) / NS_PER_S

    def run_s(self, sample: float) -> float:
        """When the file's `sample` arrived, on the run's clock."""
        t = frame_time_ns(self.arrivals, np.array([sample], dtype=np.float64))
        return float((t[0] - self.origin) / NS_PER_S)

    def seek_s(self, run_s: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Where in the file the first sample that arrived at or after `run_s` lies (seconds)."""
        if not len(self.arrivals):
            return np.zeros(np.shape(run_s))
        i = np.searchsorted(self.frame_s, run_s, "left")
        end = self.arrivals.sample[-1] + self.arrivals.samples[-1]
        at = np.where(
            i < len(self.arrivals), self.arrivals.sample[np.minimum(i, len(self.arrivals) - 1)], end
        )
        return np.asarray(at, dtype=np.float64) / ev.SAMPLE_RATE


def streams(run_dir: Path, report: dict[str, Any]) -> list[Stream]:
    """The run's received recordings (each tone direction's, or what the Customer heard from an
    agent under test) on the run's clock with their regions, then the probe's reference."""
    manifest = ev.read_manifest(run_dir)
    origin = clock_origin(manifest)
    complete = report["status"] == "complete"
    found: list[tuple[str, str, str, dict[str, Any] | None]] = [
        (f"What {files.receiver} heard from {files.sender}", files.wav, files.arrivals, d)
        for files, d in zip(ev.direction_files(manifest), report["directions"], strict=False)
    ]
    agent = ev.agent_files(manifest)
    if agent is not None and "conversation" in report:
        title = f"What the Customer heard from agent {report['conversation']['agent']}"
        found.append((title, agent["wav"], agent["arrivals"], None))
    loaded = [
        (title, wav, _read(run_dir, wav, arrivals, complete), d)
        for title, wav, arrivals, d in found
    ]
    # the axis spans what arrived: the joins before the talk are not worth a third of the page
    heard = [(a.t_ns[0] - origin) / NS_PER_S for _, _, a, _ in loaded if len(a)]
    first = math.floor(min(heard, default=0.0))
    last = max((float(a.t_ns[-1] - origin) / NS_PER_S for _, _, a, _ in loaded if len(a)),
               default=float(report.get("duration_s") or 0.0))  # fmt: skip
    out = []
    for title, wav, arrivals, direction in loaded:
        clock = _Clock(arrivals, origin)
        regions = _host_regions(report, clock)
        if direction is not None:
            burst_s = float(manifest.burst["duration_s"])
            regions = _burst_regions(direction, burst_s, clock) + regions
        else:
            regions = _turn_regions(report["conversation"], clock) + regions
        span = (first, max(last, first + 1e-3))
        out.append(_stream(title, run_dir / wav, clock, span, regions))
    probe = manifest.probe
    if probe is not None and (run_dir / probe["file"]).is_file():
        out.append(_reference(run_dir, str(probe["file"])))
    return out


def _read(run_dir: Path, wav: str, arrivals: str, complete: bool) -> ev.Timing:
    """A received stream's arrivals, cut to what its recording covers (none when a file is
    missing): the recording's part that counts is their `total_samples`."""
    if not (run_dir / wav).is_file() or not (run_dir / arrivals).is_file():
        return no_frames()
    with ev.Recording(run_dir / wav) as recording:
        size = recording.size
    timing = ev.read_timing(run_dir / arrivals, partial_tail=not complete)
    return ev.common_part(size, timing, strict=False, wav=wav, timing=arrivals)


def _frame_extremes(
    wav: Path, arrivals: ev.Timing
) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.int16]]:
    """The min and max sample of each frame, a minute of frames at a time."""
    lows = np.zeros(len(arrivals), np.int16)
    highs = np.zeros(len(arrivals), np.int16)
    chunk = max(source.CHUNK_SAMPLES // FRAME_SAMPLES, 1)
    with ev.Recording(wav) as recording:
        for i in range(0, len(arrivals), chunk):
            j = min(i + chunk, len(arrivals))
            lo = int(arrivals.sample[i])
            x = recording.read(lo, int(arrivals.sample[j - 1] + arrivals.samples[j - 1]))
            starts = arrivals.sample[i:j] - lo
            lows[i:j] = np.minimum.reduceat(x, starts)
            highs[i:j] = np.maximum.reduceat(x, starts)
    return lows, highs


def _stream(
    title: str,
    wav: Path,
    clock: _Clock,
    span: tuple[float, float],
    regions: list[Region],
) -> Stream:
    start_s, end_s = span
    edges = np.linspace(start_s, end_s, COLUMNS + 1)
    low = np.zeros(COLUMNS, dtype=np.int64)
    high = np.zeros(COLUMNS, dtype=np.int64)
    a = clock.arrivals
    if len(a):  # every frame holds samples (`ev.read_timing` checks)
        lows, highs = _frame_extremes(wav, a)
        column = np.clip(np.searchsorted(edges, clock.frame_s, "right") - 1, 0, COLUMNS - 1)
        np.minimum.at(low, column, lows.astype(np.int64))
        np.maximum.at(high, column, highs.astype(np.int64))
    return Stream(
        title=title,
        wav=wav.name,
        duration_s=a.total_samples / ev.SAMPLE_RATE,
        run_clock=True,
        start_s=round(start_s, 3),
        end_s=round(end_s, 3),
        low=_levels(low),
        high=_levels(high),
        seek_s=[round(float(s), 4) for s in clock.seek_s(edges[:-1])],
        regions=regions,
    )


def _reference(run_dir: Path, name: str) -> Stream:
    """The probe as its senders play it: its own time axis, no regions."""
    with ev.Recording(run_dir / name) as recording:
        low, high, per = recording.envelope(COLUMNS)
        duration = recording.size / ev.SAMPLE_RATE
    return Stream(
        title="The probe's reference (what both senders play pieces of)",
        wav=name,
        duration_s=duration,
        run_clock=False,
        start_s=0.0,
        end_s=round(low.size * per / ev.SAMPLE_RATE, 3),
        low=_levels(low.astype(np.int64)),
        high=_levels(high.astype(np.int64)),
        seek_s=[round(i * per / ev.SAMPLE_RATE, 4) for i in range(low.size)],
        regions=[],
    )


def _levels(values: npt.NDArray[np.int64]) -> list[int]:
    return [int(v) for v in np.round(values * LEVELS / 32768)]


def _region(
    kind: str,
    label: str,
    span: tuple[float, float],
    clock: _Clock,
    seek_s: float | None = None,
    ref: int | None = None,
) -> Region:
    """A region over `span` (run seconds); it plays from `seek_s` (default: where the span's
    start lies in the file) to where its end lies."""
    start, end = span[0], max(span)
    if seek_s is None:
        seek_s, stop_s = (float(x) for x in clock.seek_s([start, end]))
    else:
        stop_s = seek_s + end - start
    return Region(kind, label, round(start, 4), round(end, 4), round(seek_s, 4),
                  round(stop_s, 4), ref)  # fmt: skip


def _burst_regions(d: dict[str, Any], burst_s: float, clock: _Clock) -> list[Region]:
    """Each burst heard (from its onset in the file), each lost one (where it was due), each gap
    and each burst with a glitch."""
    median = (d["latency_ms"]["median"] or 0.0) / 1000  # when a lost burst would have arrived
    out = []
    for b in d["bursts"]:
        n = b["burst"]
        if b.get("onset_sample") is not None:
            seek = b["onset_sample"] / ev.SAMPLE_RATE
            at = clock.run_s(b["onset_sample"])
            span = (at, at + burst_s)
            out.append(_region("burst", f"burst {n} ({b['state']})", span, clock, seek, n))
            if b.get("glitches"):
                label = f"burst {n}: {b['glitches']} glitches"
                out.append(_region("glitch", label, span, clock, seek, n))
        elif b["state"] in ("lost", "late") and b["sent_s"] is not None:
            at = b["sent_s"] + median
            label = f"burst {n} {b['state']}"
            out.append(_region("lost", label, (at, at + burst_s), clock, ref=n))
    for g in d["gaps"]:
        at = g["start_s"] + median
        label = f"gap of {g['duration_ms']:g} ms (burst {g['burst']})"
        out.append(_region("gap", label, (at, at + g["duration_ms"] / 1000), clock, ref=g["burst"]))
    return out


def _turn_regions(conv: dict[str, Any], clock: _Clock) -> list[Region]:
    """Each turn (its speech as sent), each answer heard and each barge-in (its speech's onset
    to where the agent's audio stopped)."""
    out = []
    for t in conv["turns"]:
        n = t["turn"]
        start, end = said(t)
        if start is None or end is None:
            continue
        out.append(_region("turn", f"turn {n} said", (start, end), clock, ref=n))
        if t.get("answer_start_s") is not None:
            a0 = t["answer_start_s"]
            a1 = a0 if t.get("answer_end_s") is None else t["answer_end_s"]
            out.append(_region("answer", f"turn {n} answered", (a0, a1), clock, ref=n))
        if t.get("barge_in_stop_ms") is not None:
            stop = t["barge_in_stop_ms"]
            label = f"turn {n} barge-in: the agent stopped {stop:g} ms after it"
            out.append(_region("barge-in", label, (start, start + stop / 1000), clock, ref=n))
    return out


def said(turn: dict[str, Any]) -> tuple[float, float]:
    """A turn's speech as sent (its file's bounds in a run made before speech was recorded)."""
    if turn.get("speech_start_s") is None:
        return turn["sent_start_s"], turn["sent_end_s"]
    return turn["speech_start_s"], turn["speech_end_s"]


def _host_regions(report: dict[str, Any], clock: _Clock) -> list[Region]:
    """The host's stalls and freezes (they touch every stream)."""
    out = [
        _region("stall", s["line"], (s["at_s"] - WINDOW_S, s["at_s"]), clock)
        for s in report["host"]["stalls"]
    ]
    out += [
        _region("freeze", f["line"], (f["start_s"], f["at_s"]), clock)
        for f in report["host"].get("freezes", [])
    ]
    return out
