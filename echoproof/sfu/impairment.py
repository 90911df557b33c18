"""Network impairment of forwarded streams: fixed delay, jitter, seeded random loss, outages.

An :class:`Impairment` describes what happens to one forwarded stream; a :class:`Schedule`
applies it packet by packet, with no I/O: for each arrival it says "drop" or "release at time
t". Releases never go backwards, so a stream is delayed and jittered but never reordered. The
subscriber's :class:`sfu.media.ForwardTrack` holds each packet until its release time with
``asyncio.sleep``, so nothing blocks the event loop and other streams are untouched.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from .errors import SfuError


class ImpairmentError(SfuError):
    """An impairment setting is out of range."""


@dataclass(frozen=True)
class Impairment:
    """What the server does to one forwarded stream.

    ``delay_ms``: every packet is held this long. ``jitter_ms``: plus a uniform extra in
    ``[0, jitter_ms)``, without reordering. ``loss_pct``: percent of packets dropped at random
    (0-100, as ``python -m echoproof.sfu --loss``), drawn from ``random.Random(seed)``. ``outages``:
    ``(start_s, duration_s)`` windows, counted from the stream's first packet, during which every
    packet is dropped. A dropped packet leaves a gap in the RTP sequence numbers the subscriber
    sees (see :mod:`sfu.media`), so its statistics count it as lost.
    """

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss_pct: float = 0.0
    seed: int = 0
    outages: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        for name in ("delay_ms", "jitter_ms"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ImpairmentError(f"{name} is {value}: expected a finite number >= 0")
        if not 0.0 <= self.loss_pct <= 100.0:  # also refuses nan
            raise ImpairmentError(
                f"loss is {self.loss_pct} %: expected a percentage between 0 and 100"
            )
        for start, duration in self.outages:
            if start < 0 or duration <= 0:
                raise ImpairmentError(
                    f"outage ({start}, {duration}): expected start_s >= 0 and duration_s > 0"
                )

    @property
    def is_none(self) -> bool:
        """Whether this impairment changes nothing."""
        return not (self.delay_ms or self.jitter_ms or self.loss_pct or self.outages)


# Which impairment applies to the stream from a publisher to a subscriber (by identity).
ImpairmentPolicy = Callable[[str, str], Impairment | None]


class Schedule:
    """Applies one :class:`Impairment` to the packets of one stream as they arrive."""

    def __init__(self, impairment: Impairment, clock: Callable[[], float] = time.monotonic):
        self.impairment = impairment
        self._clock = clock
        self._random = random.Random(impairment.seed)
        self._first: float | None = None
        self._last_release = -math.inf
        self.dropped = 0

    def admit(self, now: float | None = None) -> float | None:
        """The release time of a packet arriving at ``now``, or None when it is dropped."""
        now = self._clock() if now is None else now
        if self._first is None:
            self._first = now
        since = now - self._first
        imp = self.impairment
        # Draw for every packet, dropped or not, so a seed gives the same pattern every run.
        lost = self._random.random() * 100.0 < imp.loss_pct
        jitter = self._random.random() * imp.jitter_ms
        if lost or any(start <= since < start + length for start, length in imp.outages):
            self.dropped += 1
            return None
        release = max(self._last_release, now + (imp.delay_ms + jitter) / 1000)
        self._last_release = release
        return release
