"""How far a run's re-check has got: the work its analysis expects and the work done, counted in
shared memory that the directions' forked workers inherit, and shown by a ticker thread.

A unit is about a CPU second on this project's 2-core machine (docs/long-runs.md): scanning a
minute of a received recording (detecting, timing and examining its bursts) about 0.1, scoring
a probe segment's MOS about 0.5. Each direction says what it expects as it starts, then counts
what it has done; nothing is counted unless a meter is running (`metered`).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
from collections.abc import Callable, Iterator
from typing import Any

from echoproof.contract import SAMPLE_RATE

SCAN_PER_MIN = 0.1  # units per minute of a received recording scanned
MOS_SEGMENT = 0.5  # units per probe segment scored

_meter: Meter | None = None


class Meter:
    """Units expected and done, in memory shared with processes forked while it runs."""

    def __init__(self) -> None:
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else None)
        self._counts: Any = context.Array("d", 2)  # expected, done

    def add(self, index: int, units: float) -> None:
        with self._counts.get_lock():
            self._counts[index] += units

    @property
    def share(self) -> float | None:
        """The share done, 0..1; None before anything is expected."""
        expected, done = self._counts[0], self._counts[1]  # a glance: no lock held at a fork
        return min(done / expected, 1.0) if expected > 0 else None


def work(samples: int, segments: int) -> float:
    """The units of scanning `samples` of a recording and scoring `segments` probe segments."""
    return samples / (SAMPLE_RATE * 60) * SCAN_PER_MIN + segments * MOS_SEGMENT


def expect(units: float) -> None:
    """The analysis will do `units` more work."""
    if _meter is not None and units > 0:
        _meter.add(0, units)


def done(units: float) -> None:
    """The analysis did `units` of work."""
    if _meter is not None and units > 0:
        _meter.add(1, units)


def scanned() -> Callable[[int], None]:
    """A `dsp.detect_bursts` progress callback: counts the samples it says it has dealt with."""
    last = 0

    def at(position: int) -> None:
        nonlocal last
        done(work(position - last, 0))
        last = max(last, position)

    return at


@contextlib.contextmanager
def metered(show: Callable[[float], None], every_s: float = 0.5) -> Iterator[None]:
    """While the block runs, count the analysis' work and call `show(share)` every `every_s`
    from a thread of its own; `show(1.0)` when the block is done."""
    global _meter
    meter = Meter()
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(every_s):
            if (share := meter.share) is not None:
                show(share)

    _meter = meter
    thread = threading.Thread(target=tick, name="progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        _meter = None
    show(1.0)  # done, whatever the estimate said
