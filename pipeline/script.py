"""What a speaker says, as 10 ms frames: clips placed at known samples of its stream.

A clip is a burst (`pipeline.tones.schedule`), a piece of the probe (`pipeline.tones.probe`) or a
turn said to an agent under test (`pipeline.agent.utterances`). Sample `i` of a stream is due at
`start + i / SAMPLE_RATE` s; frame `n` holds samples `n x FRAME_SAMPLES` up to the next frame.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from echoproof.contract import FRAME_SAMPLES, SAMPLE_RATE

Int16Array = npt.NDArray[np.int16]
FRAMES_PER_S = SAMPLE_RATE // FRAME_SAMPLES


class Clip(Protocol):
    """Audio placed in a stream: from `start_sample` to one before `end_sample`."""

    @property
    def start_sample(self) -> int: ...

    @property
    def end_sample(self) -> int: ...


C = TypeVar("C", bound=Clip)


class Frames(Protocol):
    """What a speaker sends: frame `n`'s samples, asked for in order, and the clips finished
    once `n` frames were sent (`Script`, or turns placed as a conversation goes)."""

    def frame(self, n: int) -> Int16Array: ...

    def finished(self, frames_sent: int) -> Sequence[Any]: ...


def total_frames(duration_s: float) -> int:
    """How many 10 ms frames a speaker sends in a conversation of `duration_s` seconds."""
    return round(duration_s * SAMPLE_RATE) // FRAME_SAMPLES


class Script(Generic[C]):
    """Renders a stream frame by frame from its `clips` (in order, apart) and each clip's audio.

    Frames must be asked for in order (`frame(0)`, `frame(1)`, ...); `audio(clip)` is asked once
    while the clip plays. `finished(n)` lists the clips whose every sample lies in frames before
    `n`, each once, so the caller records a clip only after all of its frames were handed to the
    SDK. `overlay`, when given, is another script mixed in (the probe between the bursts).
    """

    def __init__(
        self,
        clips: Sequence[C],
        audio: Callable[[C], Int16Array],
        overlay: Script[Any] | None = None,
    ) -> None:
        self.clips = list(clips)
        self.overlay = overlay
        self._audio = audio
        self._first = 0  # first clip that may still overlap the next frame
        self._reported = 0  # clips already returned by finished()
        self._playing: tuple[int, Int16Array] | None = None  # a clip's audio, while it plays

    def frame(self, n: int) -> Int16Array:
        """The FRAME_SAMPLES samples of frame `n`: silence, or the parts of clips in it."""
        out = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        self.add(n, out)
        if self.overlay is not None:
            self.overlay.add(n, out)
        return out

    def add(self, n: int, out: Int16Array) -> None:
        """Add this script's samples of frame `n` to `out`."""
        lo, hi = n * FRAME_SAMPLES, (n + 1) * FRAME_SAMPLES
        clips = self.clips
        while self._first < len(clips) and clips[self._first].end_sample <= lo:
            self._first += 1
        i = self._first
        while i < len(clips) and clips[i].start_sample < hi:
            c = clips[i]
            a, z = max(lo, c.start_sample), min(hi, c.end_sample)
            if a < z:
                out[a - lo : z - lo] += self._clip_audio(i)[a - c.start_sample : z - c.start_sample]
            i += 1

    def _clip_audio(self, i: int) -> Int16Array:
        if self._playing is None or self._playing[0] != i:
            self._playing = (i, self._audio(self.clips[i]))
        return self._playing[1]

    def finished(self, frames_sent: int) -> list[C]:
        """Clips that lie wholly in the first `frames_sent` frames and were not returned before."""
        end = frames_sent * FRAME_SAMPLES
        done: list[C] = []
        clips = self.clips
        while self._reported < len(clips) and clips[self._reported].end_sample <= end:
            done.append(clips[self._reported])
            self._reported += 1
        return done
