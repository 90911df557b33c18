"""Classification: what each scheduled burst of a direction is, once detections are matched.

Per burst, exactly one of:

- ``detected``: matched within the window and timed (its latency is in the statistics);
- ``truncated``: heard only from part-way through (rule below): level and SNR, no latency;
- ``late``: first heard after the matching window;
- ``outside_recording``: not heard, and its window lies outside the receiver's recording (sent
  before it started, or too close to its end);
- ``lost``: not heard, inside the recording.

Truncated. A burst heard only from part-way through (an outage or dropout swallowed its start)
gives a detection whose onset is where the audio resumed: its latency would be the missing part
too long. Such a burst is "truncated": heard but not timed. It has level and SNR but no latency,
is not lost, is not in the latency statistics or `bursts_detected` (which counts bursts matched
and timed), and counts as one glitch (its missing start) plus any inside its heard part, in
`glitches` and `bursts_with_glitches`. The rule (`truncated_bursts`): the burst's first detection
(on time or late) arrives at least `TRUNCATED_MS` later than its neighbours' latencies on both
sides predict (the median latency of the full-length timed bursts among the 3 before it, and
among the 3 after it), while its end does not: it is short of the scheduled length by at least
half that lateness. A burst that really arrived late is late at both ends; one whose tail
was cut (the outage began mid-burst) is short but on time; the second part of a burst split by a
dropout is a fragment. With no full-length timed burst in the direction there is nothing to
compare with, and no burst is called truncated.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import numpy.typing as npt

from verify._gaps import OFFSET_SPAN, local_offsets
from verify._matching import Matches

TRUNCATED_MS = 20.0  # an onset this much later than its neighbours' may be a truncated burst

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]


@dataclasses.dataclass(frozen=True)
class BurstStates:
    """Per burst: which state it is in (one mask each, exclusive), and what of it was heard."""

    first: npt.NDArray[np.int64]  # its first detection (on time, else late), or -1
    detected: BoolArray
    truncated: BoolArray
    late: BoolArray
    outside: BoolArray
    lost: BoolArray
    heard_samples: FloatArray  # the schedule's length, or the first detection's if shorter

    @property
    def heard(self) -> BoolArray:
        """Bursts with level, SNR and glitches: detected or truncated."""
        return self.detected | self.truncated

    def name(self, i: int) -> str:
        """The state of burst `i`, as the report names it."""
        for state, mask in (
            ("detected", self.detected),
            ("truncated", self.truncated),
            ("late", self.late),
            ("outside_recording", self.outside),
        ):
            if mask[i]:
                return state
        return "lost"


def classify(
    matches: Matches,
    latency_ms: FloatArray,
    durations: FloatArray,
    scheduled: npt.NDArray[np.integer],
    outside_window: BoolArray,
    sample_rate: int,
) -> BurstStates:
    """Each burst's state.

    `latency_ms`: per burst, of its first detection (NaN: none); `durations`: per detection, its
    length in samples; `scheduled`: per burst, its length in samples; `outside_window`: per burst,
    whether its matching window lies outside the receiver's recording.
    """
    first = matches.first
    heard_any = first >= 0
    heard_samples = scheduled.astype(np.float64)
    heard_samples[heard_any] = np.minimum(heard_samples[heard_any], durations[first[heard_any]])
    shortfall_ms = (scheduled - heard_samples) * (1000.0 / sample_rate)
    cut = truncated_bursts(latency_ms, shortfall_ms, matches.on_time >= 0)
    detected = (matches.on_time >= 0) & ~cut
    late = ~detected & (matches.late >= 0) & ~cut
    outside = outside_window & ~detected & ~late & ~cut
    lost = ~detected & ~late & ~outside & ~cut
    return BurstStates(
        first=first,
        detected=detected,
        truncated=cut,
        late=late,
        outside=outside,
        lost=lost,
        heard_samples=heard_samples,
    )


def detection_states(matches: Matches, bursts: BurstStates) -> list[str]:
    """Per detection, its state for the plots: the matching's, with truncated bursts' first
    detections marked ``truncated``."""
    states = list(matches.states)
    for k in bursts.first[bursts.truncated]:
        states[int(k)] = "truncated"
    return states


def truncated_bursts(
    latency_ms: FloatArray, shortfall_ms: FloatArray, on_time: BoolArray
) -> BoolArray:
    """Per burst, whether its first detection started part-way through it (module docstring).

    `latency_ms`: of each burst's first detection (NaN: none); `shortfall_ms`: how much shorter
    than scheduled that detection is; `on_time`: matched within the window.

    Why this rule: the ramp does not tell on real recordings. The receiver's jitter buffer
    reshapes onsets (a stream's first burst, time-stretching near an onset), so a ramp-shape
    test flagged true starts, and a stream resuming after an outage fades in over ~20 ms rather
    than starting abruptly. A resumed burst was late by its missing part within a few ms in
    every case seen. Late against the neighbours on both sides, because the jitter buffer can
    shrink inside one burst (seen: 12 ms): such a burst is short and on time for the bursts
    after it, but its onset is on time for the bursts before it.
    """
    # Full-length timed bursts are the reference: none of them can be flagged (a flagged burst
    # is at least TRUNCATED_MS / 2 short), so the reference does not depend on the outcome.
    reference = np.where(on_time & (shortfall_ms < TRUNCATED_MS / 2), latency_ms, np.nan)
    excess = latency_ms - _expected_latency(reference)  # NaN where nothing to compare with
    return np.asarray((excess >= TRUNCATED_MS) & (shortfall_ms >= excess / 2), dtype=bool)


def _expected_latency(reference: FloatArray) -> FloatArray:
    """Per burst, the larger of the median reference latency (NaN: none) of the `OFFSET_SPAN`
    bursts before it and of those after it; with neither, the nearest reference (or NaN)."""
    out = local_offsets(reference)
    for i in range(reference.size):
        sides = [reference[max(0, i - OFFSET_SPAN) : i], reference[i + 1 : i + 1 + OFFSET_SPAN]]
        medians = [float(np.median(v[np.isfinite(v)])) for v in sides if np.isfinite(v).any()]
        if medians:
            out[i] = max(medians)
    return out
