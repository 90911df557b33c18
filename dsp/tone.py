"""Tones as the agents send them: a continuous tone generator and one-burst waveforms."""

from __future__ import annotations

import math

import numpy as np

from dsp import _checks
from dsp._errors import DspError
from dsp._kernels import burst_wave, sine_int16

SAMPLE_RATE = 48000
FRAME_SAMPLES = 480
_INT16_PEAK = 32767.0


class ToneGenerator:
    """A sine tone delivered frame by frame with continuous phase (no click at frame edges).

    The first sample of the first frame has phase 0 (value 0); the phase is carried between
    calls, so concatenated frames equal one long tone whatever the frame sizes.
    """

    def __init__(self, freq_hz: float, sample_rate: int = SAMPLE_RATE, amplitude: float = 0.5):
        self.sample_rate = _checks.positive("sample_rate", sample_rate)
        self.freq_hz = _checks.frequency("freq_hz", freq_hz, self.sample_rate)
        self.amplitude = _checks.amplitude(amplitude)
        self._step = self.freq_hz / self.sample_rate  # cycles per sample
        self._phase = 0.0  # cycles, in [0, 1)

    def frame(self, samples: int = FRAME_SAMPLES) -> np.ndarray:
        """The next ``samples`` samples of the tone, int16."""
        n = _checks.count("samples", samples)
        out = np.empty(n, dtype=np.int16)
        self._phase = sine_int16(out, self._phase, self._step, self.amplitude * _INT16_PEAK)
        return out

    def __repr__(self) -> str:
        return (
            f"ToneGenerator({self.freq_hz!r}, sample_rate={self.sample_rate!r}, "
            f"amplitude={self.amplitude!r})"
        )


def burst_length(duration_s: float, sample_rate: float, offset: float) -> int:
    """Samples in the array ``burst`` returns: every sample at or before the burst's end."""
    return math.floor(offset + duration_s * sample_rate) + 1


def burst(
    freq_hz: float,
    duration_s: float,
    sample_rate: int = SAMPLE_RATE,
    *,
    amplitude: float = 0.5,
    ramp_s: float = 0.005,
    offset: float = 0.0,
) -> np.ndarray:
    """One "utterance": a tone of ``duration_s`` with raised-cosine ramps of ``ramp_s``, int16.

    The waveform is ``amplitude * env(t) * sin(2 pi freq_hz t)`` with ``t`` in seconds from the
    burst's sample 0, which lies ``offset`` samples (fractional, >= 0) into the returned array;
    so the carrier's phase at the burst's start is 0, which is what lets ``detect_bursts`` time
    it to a fraction of a sample. The array ends with the last sample at or before the burst's
    end (``floor(offset + duration_s * sample_rate) + 1`` samples).
    """
    rate = _checks.positive("sample_rate", sample_rate)
    freq = _checks.frequency("freq_hz", freq_hz, rate)
    duration = _checks.positive("duration_s", duration_s)
    ramp = _checks.non_negative("ramp_s", ramp_s)
    if 2 * ramp > duration:
        raise DspError(
            f"ramp_s must be at most half of duration_s ({duration / 2} s), got {ramp_s!r}"
        )
    amp = _checks.amplitude(amplitude)
    start = _checks.non_negative("offset", offset)
    wave = np.empty(burst_length(duration, rate, start), dtype=np.float64)
    burst_wave(wave, start, 2 * math.pi * freq / rate, ramp * rate, duration * rate, 1.0)
    return np.round(wave * (amp * _INT16_PEAK)).astype(np.int16)
