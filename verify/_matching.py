"""Matching: each detection of a direction to the scheduled burst it belongs to.

Each detection belongs to the latest burst sent before it arrived. The first one within the
matching window is that burst's detection; one arriving later is "late"; another one after the
burst's end is "repeated"; one inside the burst's extent is a fragment (a gap split the burst; it
counts as a glitch); one arriving before any burst was sent is "unexpected". A delay longer than
the burst period makes a late burst look like a repeat of the next: unavoidable without burst
identities in the audio.

What each burst then is (detected, truncated, late, lost, ...) is `verify._classify`'s.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclasses.dataclass(frozen=True)
class Matches:
    """Detections matched to bursts: per burst (`on_time`, `late`) and per detection (`states`)."""

    on_time: IntArray  # per burst: its detection within the window, or -1
    late: IntArray  # per burst: its first detection after the window, or -1
    states: list[str]  # per detection: detected, late, repeated, fragment, unexpected
    repeated: int
    fragments: int
    unexpected: int

    @property
    def first(self) -> IntArray:
        """Per burst: its first detection (on time, else late), or -1."""
        return np.where(self.on_time >= 0, self.on_time, self.late)


def match_detections(
    sent_ns: FloatArray,
    arrived_ns: FloatArray,
    onsets: FloatArray,
    lengths: npt.NDArray[np.integer],
    window_ns: float,
) -> Matches:
    """Match detections (arrival times `arrived_ns`, received onsets `onsets`, in order) to the
    bursts (send times `sent_ns`, ascending; scheduled `lengths` in samples)."""
    on_time = np.full(sent_ns.size, -1, dtype=np.int64)
    late = np.full(sent_ns.size, -1, dtype=np.int64)
    states: list[str] = []
    for k in range(onsets.size):
        i = int(np.searchsorted(sent_ns, arrived_ns[k], "right")) - 1
        if i < 0:
            states.append("unexpected")
        elif on_time[i] >= 0:
            inside = onsets[k] < onsets[on_time[i]] + lengths[i]
            states.append("fragment" if inside else "repeated")
        elif arrived_ns[k] - sent_ns[i] > window_ns:
            if late[i] < 0:
                late[i] = k
            states.append("late")
        else:
            on_time[i] = k
            states.append("detected")
    return Matches(
        on_time=on_time,
        late=late,
        states=states,
        repeated=states.count("repeated"),
        fragments=states.count("fragment"),
        unexpected=states.count("unexpected"),
    )
