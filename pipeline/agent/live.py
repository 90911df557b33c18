"""The Customer's turns placed as the conversation goes: a barge-in waits for the agent's answer.

A turn without `barge_in_after_ms` starts as in `pipeline.agent.utterances.turns`: one answer
window after the end of the turn before (the first: one window after the start). A barge-in turn
starts `barge_in_after_ms` after the Customer *heard* the agent's answer begin (its speech then
starts there, to the sample, or at once when that is already past): the answer to the turn before,
heard after that turn's speech ended; for the first turn, the greeting. When the Customer hears
no answer begin before the window is over, it says the turn then, as any other, and the turn
records that no barge-in happened (`barge_in_heard_ns` None).

`AnswerOnsets` is the cheap detector the Customer runs on every frame it receives: a frame is
voiced when its level is `MARGIN_DB` over the quietest frame of the last 10 s and at least
`MIN_DBFS`; `ONSET_FRAMES` voiced frames in a row begin a sound, at the arrival of the first of
them; `RELEASE_FRAMES` unvoiced ones end it. It is live, so it is coarse (to a frame): verify
times everything again from the recording.
"""

from __future__ import annotations

import collections
import math

import numpy as np

from echoproof.contract import FRAME_SAMPLES, SAMPLE_RATE
from pipeline.agent.utterances import Turn, Utterance, frames_up
from pipeline.script import Int16Array, Script

MARGIN_DB = 15.0
MIN_DBFS = -50.0
ONSET_FRAMES = 2  # 20 ms: a click is not an answer
RELEASE_FRAMES = 5  # 50 ms: find_voice merges shorter pauses too
FLOOR_FRAMES = 1000  # 10 s of frame levels for the noise floor: longer than an answer


class AnswerOnsets:
    """Where the agent's sounds began, as the Customer heard them: monotonic ns of arrival."""

    def __init__(self) -> None:
        self.onsets: list[int] = []
        # The last FLOOR_FRAMES levels' minimum, kept as (frame, level) with levels rising: the
        # front is the minimum. O(1) a frame where min() over the window took 16 us of its 25.
        self._floor: collections.deque[tuple[int, float]] = collections.deque()
        self._frames = 0
        self._run_first = 0  # the arrival of the first of the voiced frames in a row so far
        self._run = 0  # how many voiced frames in a row
        self._quiet = RELEASE_FRAMES  # unvoiced frames in a row
        self._sounding = False

    def feed(self, pcm: Int16Array, t_ns: int) -> None:
        """One received frame, arrived at `t_ns`."""
        mean_square = float(np.mean(np.square(pcm, dtype=np.float64))) if pcm.size else 0.0
        level = 10 * math.log10(mean_square / 32768.0**2) if mean_square > 0 else -math.inf
        floor, n = self._floor, self._frames
        while floor and floor[-1][1] >= level:
            floor.pop()
        floor.append((n, level))
        if floor[0][0] <= n - FLOOR_FRAMES:
            floor.popleft()
        self._frames = n + 1
        threshold = max(MIN_DBFS, floor[0][1] + MARGIN_DB)
        if level < threshold:
            self._run = 0
            self._quiet += 1
            if self._quiet >= RELEASE_FRAMES:
                self._sounding = False
            return
        self._quiet = 0
        if self._run == 0:
            self._run_first = t_ns
        self._run += 1
        if not self._sounding and self._run >= ONSET_FRAMES:
            self._sounding = True
            self.onsets.append(self._run_first)

    def first_after(self, t_ns: float) -> int | None:
        """The first onset heard after `t_ns`, or None."""
        for onset in self.onsets:
            if onset > t_ns:
                return onset
        return None


class LiveTurns:
    """The Customer's stream (`frame(n)`, `finished(n)`, as `pipeline.script.Script`), its turns
    placed frame by frame; `heard` is fed what the Customer hears; `begin(start_ns)` first."""

    def __init__(self, utterances: list[Utterance], *, duration_s: float, window_s: float) -> None:
        self.utterances = utterances
        self.heard = AnswerOnsets()
        self._window_s = window_s
        self._end = round(duration_s * SAMPLE_RATE)
        self._script: Script[Turn] = Script([], lambda turn: utterances[turn.utterance].pcm)
        self._start_ns: int | None = None
        self._done = False

    @property
    def turns(self) -> list[Turn]:
        """The turns placed so far."""
        return self._script.clips

    def begin(self, start_ns: int) -> None:
        """Sample 0 of the stream is due at `start_ns`."""
        self._start_ns = start_ns

    def frame(self, n: int) -> Int16Array:
        """Frame `n`, after placing any turn that starts in it."""
        lo = n * FRAME_SAMPLES
        while not self._done and (not self.turns or self.turns[-1].start_sample < lo):
            if not self._place_next(lo):
                break
        return self._script.frame(n)

    def finished(self, frames_sent: int) -> list[Turn]:
        """The turns wholly sent in the first `frames_sent` frames, each once."""
        return self._script.finished(frames_sent)

    def _place_next(self, lo: int) -> bool:
        """Place the next turn if its start is known by frame `lo`; False when it is not yet."""
        k = len(self.turns)
        u = self.utterances[k % len(self.utterances)]
        before = self.turns[-1] if self.turns else None
        normal = frames_up(
            self._window_s if before is None else before.end_sample / SAMPLE_RATE + self._window_s
        )
        start, heard = normal, None
        if u.barge_in_after_ms is not None:
            onset = self.heard.first_after(self._listen_from(before))
            if onset is not None:
                due_ns = onset + u.barge_in_after_ms * 1e6
                speech_at = self._sample_at(due_ns)
                floor = lo if before is None else max(lo, before.end_sample)
                start, heard = max(speech_at - u.speech[0], floor), onset
            elif normal >= lo + FRAME_SAMPLES:
                return False  # still listening for the answer
        if start + u.samples + round(self._window_s * SAMPLE_RATE) > self._end:
            self._done = True
            return False
        onset_sample, offset_sample = u.speech
        self.turns.append(
            Turn(
                k,
                k % len(self.utterances),
                start,
                u.samples,
                start + onset_sample,
                offset_sample - onset_sample,
                heard,
            )
        )
        return True

    def _listen_from(self, before: Turn | None) -> float:
        """A barge-in answers the agent's answer to `before`: heard after its speech ended (the
        first turn: any sound heard, the greeting)."""
        if before is None:
            return -math.inf
        return self._time_of(before.speech_end_sample)

    def _time_of(self, sample: int) -> float:
        assert self._start_ns is not None, "begin() first"
        return self._start_ns + sample * 1e9 / SAMPLE_RATE

    def _sample_at(self, t_ns: float) -> int:
        assert self._start_ns is not None, "begin() first"
        return math.ceil((t_ns - self._start_ns) * SAMPLE_RATE / 1e9)
