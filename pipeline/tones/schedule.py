"""The burst schedule of a conversation and the audio each agent speaks.

Both agents' streams start at one shared instant; sample `i` of either stream is due at
`start + i / 48000` s. A conversation is a run of periods: in `turns` mode the Customer speaks
one burst at the start of each period and the Support agent answers half a period later; in
`duplex` mode both speak at the start of each period. Every burst has an id per sender (0, 1,
2...) and a start sample, so verify can tell a lost, late or repeated burst from a detected one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from echoproof.contract import FRAME_SAMPLES as FRAME_SAMPLES
from echoproof.contract import SAMPLE_RATE as SAMPLE_RATE

# Silence before the first burst: the receivers' jitter buffers settle meanwhile.
LEAD_IN_S = 0.5
# Silence after the last burst, so that it arrives before the senders stop.
TAIL_S = 0.3

Int16Array = npt.NDArray[np.int16]


class Overlay(Protocol):
    """Audio added between the bursts (`pipeline.tones.probe.ProbeVoice`), frame by frame in
    order."""

    def add(self, n: int, out: Int16Array) -> None:
        """Add frame `n`'s samples to `out`."""


@dataclass(frozen=True)
class Burst:
    """One scheduled utterance: id per sender, tone, first sample and length in samples."""

    id: int
    freq_hz: float
    start_sample: int
    samples: int

    @property
    def end_sample(self) -> int:
        """One past the burst's last sample."""
        return self.start_sample + self.samples


def schedule(
    role: str,
    *,
    mode: str,
    tone_hz: float,
    duration_s: float,
    burst_samples: int,
    period_s: float,
) -> list[Burst]:
    """Every burst `role` ("customer" or "support") sends in a conversation of `duration_s` seconds.

    `burst_samples` is the length of the burst waveform (`len(dsp.burst(...))`).
    """
    if role not in ("customer", "support"):
        raise ValueError(f"role is {role!r}; expected 'customer' or 'support'")
    offset_s = period_s / 2 if (role == "support" and mode == "turns") else 0.0
    samples = burst_samples
    last_end = round((duration_s - TAIL_S) * SAMPLE_RATE)
    bursts: list[Burst] = []
    k = 0
    while True:
        start = round((LEAD_IN_S + k * period_s + offset_s) * SAMPLE_RATE)
        if start + samples > last_end:
            return bursts
        bursts.append(Burst(len(bursts), tone_hz, start, samples))
        k += 1


def total_frames(duration_s: float) -> int:
    """How many 10 ms frames each agent sends in a conversation of `duration_s` seconds."""
    return round(duration_s * SAMPLE_RATE) // FRAME_SAMPLES


class Voice:
    """Renders one sender's stream frame by frame from its schedule and one burst waveform.

    Frames must be asked for in order (`frame(0)`, `frame(1)`, ...); `finished(n)` lists the bursts
    whose every sample lies in frames before `n`, each once, so the caller records a burst only
    after all of its frames were handed to the SDK. `probe`, when given, adds the speech-like
    probe between the bursts (`pipeline.tones.probe`).
    """

    def __init__(
        self, bursts: list[Burst], waveform: Int16Array, probe: Overlay | None = None
    ) -> None:
        if any(b.samples != len(waveform) for b in bursts):
            raise ValueError("every burst must be as long as the waveform")
        self._bursts = bursts
        self._waveform = waveform
        self.probe = probe
        self._first = 0  # first burst that may still overlap the next frame
        self._reported = 0  # bursts already returned by finished()

    @property
    def bursts(self) -> list[Burst]:
        """The whole schedule."""
        return self._bursts

    def frame(self, n: int) -> Int16Array:
        """The 480 samples of frame `n`: silence or the parts of bursts that overlap it."""
        lo, hi = n * FRAME_SAMPLES, (n + 1) * FRAME_SAMPLES
        out = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        while self._first < len(self._bursts) and self._bursts[self._first].end_sample <= lo:
            self._first += 1
        i = self._first
        while i < len(self._bursts) and self._bursts[i].start_sample < hi:
            b = self._bursts[i]
            a, z = max(lo, b.start_sample), min(hi, b.end_sample)
            if a < z:
                out[a - lo : z - lo] = self._waveform[a - b.start_sample : z - b.start_sample]
            i += 1
        if self.probe is not None:
            self.probe.add(n, out)
        return out

    def finished(self, frames_sent: int) -> list[Burst]:
        """Bursts that lie wholly in the first `frames_sent` frames and were not returned before."""
        end = frames_sent * FRAME_SAMPLES
        done: list[Burst] = []
        while self._reported < len(self._bursts) and self._bursts[self._reported].end_sample <= end:
            done.append(self._bursts[self._reported])
            self._reported += 1
        return done
