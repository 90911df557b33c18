"""Sample positions as times on the run's one clock, and the rounding every figure goes through.

A sample's time is that of the frame holding it plus its offset in the frame (48 kHz). Heard
samples are timed two ways (docs/measurements.md, mouth-to-ear latency):

- `raw` (`frame_time_ns`, as for a sent sample): the arrival of the received frame holding it;
- `fit_time_ns` (the headline): a robust line through `(sample, t_ns)` of the received frames
  within `FIT_HALF_WIDTH` frames (Theil-Sen slope, median intercept). Python sees frames with
  event-loop jitter while the SDK yields them at a steady 48 kHz; the fit follows the SDK.

Both the bursts' figures (`verify.figures`) and the conversation's (`verify.conversation_figures`)
time and round here, so that a burst onset and an agent's onset are measured alike.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from verify import evidence as ev

FIT_HALF_WIDTH = 50  # frames either side of the onset in the sample -> time fit
FIT_CHUNK = 256  # onsets fitted together (bounds the pairwise-slope matrix to ~10 MB)
NS_PER_MS = 1e6
NS_PER_S = 1e9

FloatArray = npt.NDArray[np.float64]


def round_stable(value: float, digits: int) -> float:
    """`value` at `digits` decimals, -0.0 as 0.0, so that a figure reads the same on every machine
    (0.1 us for ms figures at 4 digits). The type is kept: numpy rounds a float64 its own way."""
    return round(value, digits) + 0.0


def rounded(value: float, digits: int) -> float | None:
    """A figure as the report states it: `round_stable`, with inf and NaN (no figure) as None."""
    if not math.isfinite(value):
        return None
    return round_stable(value, digits)


def run_seconds(t_ns: float, origin: int) -> float | None:
    """A monotonic time (ns) on the run's clock: seconds after its zero, `origin`."""
    return rounded(float(t_ns - origin) / NS_PER_S, 6)


def latency_stats(latency_ms: FloatArray) -> dict[str, Any]:
    """min, median, p95, max, jitter (mean |difference| of consecutive values), count."""
    if not latency_ms.size:
        return {"min": None, "median": None, "p95": None, "max": None, "jitter": None, "count": 0}
    jitter = float(np.mean(np.abs(np.diff(latency_ms)))) if latency_ms.size > 1 else 0.0
    return {
        "min": rounded(float(latency_ms.min()), 4),
        "median": rounded(float(np.median(latency_ms)), 4),
        "p95": rounded(float(np.percentile(latency_ms, 95)), 4),
        "max": rounded(float(latency_ms.max()), 4),
        "jitter": rounded(jitter, 4),
        "count": int(latency_ms.size),
    }


def no_frames() -> ev.Timing:
    """The timing of a file that is missing: no frame."""
    z = np.zeros(0, dtype=np.int64)
    return ev.Timing(sample=z, samples=z, t_ns=z)


def frame_of(timing: ev.Timing, positions: FloatArray) -> npt.NDArray[np.int64]:
    """Index of the frame holding each (fractional) sample position, clipped to the frames."""
    index = np.searchsorted(timing.sample, np.floor(positions), "right") - 1
    return np.clip(index, 0, max(len(timing) - 1, 0)).astype(np.int64)


def frame_time_ns(timing: ev.Timing, positions: FloatArray) -> FloatArray:
    """When each (fractional) sample position left or arrived: its frame's `t_ns` plus its
    offset in the frame. Sent positions are timed so; heard ones so by the `raw` method."""
    if not positions.size:
        return np.zeros(0)
    i = frame_of(timing, positions)
    return timing.t_ns[i] + (positions - timing.sample[i]) * (NS_PER_S / ev.SAMPLE_RATE)


def turn_time_ns(sent: ev.Timing, positions: npt.NDArray[np.int64], *, end: bool) -> FloatArray:
    """When a turn's whole sample `positions` left, to the ns: the frame holding it, plus its
    offset in the frame. With `end`, each position is one past a turn's last sample, timed from
    the frame holding that sample (the next frame may not exist)."""
    held = positions - 1 if end else positions
    i = np.clip(np.searchsorted(sent.sample, held, "right") - 1, 0, len(sent) - 1)
    offset = (positions - sent.sample[i]).astype(np.float64)
    return np.asarray(sent.t_ns[i] + np.round(offset * NS_PER_S / ev.SAMPLE_RATE), dtype=np.float64)


def fit_time_ns(arrivals: ev.Timing, onsets: FloatArray) -> FloatArray:
    """Time of each onset from a Theil-Sen line through the neighbouring frames' arrivals.

    Vectorised over onsets in chunks: each row is one onset's window of frames (centred on the
    onset's frame, shifted inwards at the recording's edges), the slope is the median of every
    pairwise slope in the window, the intercept the median residual at the onset.
    """
    n = len(arrivals)
    if not onsets.size or n < 2:
        return frame_time_ns(arrivals, onsets)
    frames = frame_of(arrivals, onsets)
    width = min(2 * FIT_HALF_WIDTH + 1, n)
    a, b = np.triu_indices(width, 1)
    out = np.zeros(onsets.size)
    for lo in range(0, onsets.size, FIT_CHUNK):
        j = frames[lo : lo + FIT_CHUNK]
        onset = onsets[lo : lo + FIT_CHUNK]
        first = np.clip(j - FIT_HALF_WIDTH, 0, n - width)
        index = first[:, None] + np.arange(width)[None, :]
        # small numbers: samples relative to the onset, ns relative to the onset's frame
        x = arrivals.sample[index] - onset[:, None]
        y = (arrivals.t_ns[index] - arrivals.t_ns[j][:, None]).astype(np.float64)
        slope = np.median((y[:, b] - y[:, a]) / (x[:, b] - x[:, a]), axis=1)
        intercept = np.median(y - slope[:, None] * x, axis=1)
        out[lo : lo + FIT_CHUNK] = arrivals.t_ns[j] + intercept
    return out
