"""A speech-like probe signal, deterministic from a seed, and the filter that keeps tones clear.

After ITU-T P.50's artificial voice: a sequence of syllables, each voiced (a glottal pulse train
with a gliding fundamental, shaped by three formant resonators of a vowel) or unvoiced (noise
through a fricative's resonance), with a syllabic envelope and pauses, so that the signal has
speech's long-term spectrum (most energy from 200 Hz to 1 kHz, falling above) and its on/off
rhythm (about 4 syllables a second), at P.56's usual active level (-26 dBFS). No recording is
involved: the same seed gives the same samples on every machine (numpy's PCG64, float64).

`clear_tones` removes the band around each measurement tone from a probe (the synthetic one or a
user's file): the burst detector runs over the whole recording, and a voiced harmonic at 440 Hz
held for 50 ms would otherwise be taken for a burst.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy import signal

from dsp import _checks

FloatArray = npt.NDArray[np.float64]

# Vowel formants F1, F2, F3 in Hz (averages of adult speakers) and their bandwidths.
_VOWELS = (
    (730.0, 1090.0, 2440.0),  # a
    (530.0, 1840.0, 2480.0),  # e
    (270.0, 2290.0, 3010.0),  # i
    (570.0, 840.0, 2410.0),  # o
    (300.0, 870.0, 2240.0),  # u
    (660.0, 1720.0, 2410.0),  # ae
    (520.0, 1190.0, 2390.0),  # schwa
)
_BANDWIDTHS = (90.0, 110.0, 170.0)
# Fricatives: centre and bandwidth of the noise's resonance (s, sh, f).
_FRICATIVES = ((5000.0, 2500.0), (3000.0, 1500.0), (6000.0, 3500.0))
#: Half-width of the band removed around each tone, Hz: what is left near the tone is too weak
#: to make a 10 ms block tone-dominated (the detector's test), pieces being clear of the bursts.
TONE_GUARD_HZ = 60.0
#: The probe's band: what speech mode of ViSQOL (16 kHz) scores, above mains hum.
BAND_HZ = (100.0, 7000.0)
#: The probe's active speech level: P.56's usual -26 dBov leaves its peaks below full scale.
LEVEL_DBFS = -26.0
#: Fade at either end of a probe piece, so that cutting the probe into pieces adds no click.
FADE_S = 0.01


def _resonator(x: FloatArray, freq: float, bandwidth: float, rate: float) -> FloatArray:
    """A two-pole resonance at `freq` with unit gain at its peak."""
    r = math.exp(-math.pi * bandwidth / rate)
    theta = 2 * math.pi * freq / rate
    a = [1.0, -2 * r * math.cos(theta), r * r]
    gain = abs(np.polyval(a[::-1], np.exp(-1j * theta)))  # |A(e^{j theta})|
    out: FloatArray = signal.lfilter([gain], a, x)
    return out


def _envelope(n: int, rate: float, attack_s: float, release_s: float) -> FloatArray:
    env = np.ones(n)
    a, r = min(n // 2, round(attack_s * rate)), min(n // 2, round(release_s * rate))
    if a:
        env[:a] = 0.5 - 0.5 * np.cos(np.pi * np.arange(a) / a)
    if r:
        env[n - r :] = 0.5 + 0.5 * np.cos(np.pi * np.arange(1, r + 1) / r)
    return env


def _voiced(rng: np.random.Generator, n: int, rate: float, f0_base: float) -> FloatArray:
    # The fundamental glides across the syllable (intonation) with a little jitter.
    f0_start = f0_base * rng.uniform(0.85, 1.2)
    f0_end = f0_start * rng.uniform(0.8, 1.1)
    f0 = np.linspace(f0_start, f0_end, n) * (1 + 0.01 * rng.standard_normal(n).cumsum() / n**0.5)
    phase = np.cumsum(f0 / rate)
    pulses = np.zeros(n)
    pulses[np.flatnonzero(np.diff(np.floor(phase), prepend=0.0) > 0)] = 1.0
    # Glottal source: two one-pole low-passes give its -12 dB per octave roll-off.
    pole = math.exp(-2 * math.pi * 200.0 / rate)
    source = signal.lfilter([1 - pole], [1, -pole], signal.lfilter([1 - pole], [1, -pole], pulses))
    source += 0.02 * rng.standard_normal(n) * np.abs(source).max()  # breathiness
    vowel = _VOWELS[rng.integers(len(_VOWELS))]
    out = np.zeros(n)
    for formant, bandwidth, gain in zip(vowel, _BANDWIDTHS, (1.0, 0.5, 0.25), strict=True):
        out += gain * _resonator(source, formant * rng.uniform(0.95, 1.05), bandwidth, rate)
    return out


def _unvoiced(rng: np.random.Generator, n: int, rate: float) -> FloatArray:
    centre, bandwidth = _FRICATIVES[rng.integers(len(_FRICATIVES))]
    centre = min(centre, 0.4 * rate)
    return 0.3 * _resonator(rng.standard_normal(n), centre, bandwidth, rate)


def artificial_voice(seed: int, duration_s: float, rate: int) -> FloatArray:
    """`duration_s` of speech-like float64 audio at `rate` Hz from `seed`, at `LEVEL_DBFS`.

    Syllables of 120-300 ms (4 in 5 voiced), pauses of 60-250 ms after about one syllable in
    three; one talker's fundamental (100-220 Hz) drawn from the seed.
    """
    rate_hz = _checks.positive("rate", rate)
    n_total = round(_checks.positive("duration_s", duration_s) * rate_hz)
    rng = np.random.default_rng(_checks.count("seed", seed, minimum=0))
    f0_base = rng.uniform(100.0, 220.0)
    out = np.zeros(n_total)
    active = np.zeros(n_total, dtype=bool)
    at = round(rng.uniform(0.02, 0.08) * rate_hz)
    while at < n_total:
        n = min(round(rng.uniform(0.12, 0.30) * rate_hz), n_total - at)
        voiced = rng.random() < 0.8
        body = _voiced(rng, n, rate_hz, f0_base) if voiced else _unvoiced(rng, n, rate_hz)
        body *= _envelope(n, rate_hz, 0.02, 0.04) * rng.uniform(0.5, 1.0)
        out[at : at + n] = body
        active[at : at + n] = True
        at += n
        if rng.random() < 0.35:
            at += round(rng.uniform(0.06, 0.25) * rate_hz)
    out = _band(out, rate_hz, [])
    rms = float(np.sqrt(np.mean(out[active] ** 2))) if active.any() else 0.0
    return out * (10 ** (LEVEL_DBFS / 20) / rms) if rms > 0 else out


def _band(x: FloatArray, rate: float, notches: Sequence[float]) -> FloatArray:
    """`x` limited to `BAND_HZ`, with `TONE_GUARD_HZ` around each of `notches` removed.

    Done in the frequency domain, with cosine transitions of 20 Hz outside each removed band:
    exact, and deterministic.
    """
    if x.size == 0:
        return x.copy()
    spectrum = np.fft.rfft(x)
    freqs = np.asarray(np.fft.rfftfreq(x.size, 1 / rate), dtype=np.float64)
    ramp = 20.0

    def rise(f: FloatArray, edge: float) -> FloatArray:
        """0 below `edge - ramp`, 1 above `edge`, a raised cosine between."""
        t = np.clip((f - edge + ramp) / ramp, 0.0, 1.0)
        out: FloatArray = 0.5 - 0.5 * np.cos(np.pi * t)
        return out

    gain = rise(freqs, BAND_HZ[0]) * (1 - rise(freqs, BAND_HZ[1] + ramp))
    for tone in notches:
        lo, hi = tone - TONE_GUARD_HZ, tone + TONE_GUARD_HZ
        gain *= 1 - rise(freqs, lo) * (1 - rise(freqs, hi + ramp))
    out: FloatArray = np.fft.irfft(spectrum * gain, n=x.size)
    return out


def clear_tones(x: FloatArray, rate: float, tones_hz: Sequence[float]) -> FloatArray:
    """`x` band-limited to `BAND_HZ` with `TONE_GUARD_HZ` either side of every tone removed."""
    return _band(np.asarray(x, dtype=np.float64), _checks.positive("rate", rate), tones_hz)


def to_int16(x: FloatArray) -> npt.NDArray[np.int16]:
    """Float audio in [-1, 1] as int16 samples (clipped, rounded)."""
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)


def piece(probe: npt.NDArray[np.int16], offset: int, samples: int, rate: float) -> FloatArray:
    """`samples` of `probe` from `offset` (wrapping round its end), faded in and out over
    `FADE_S`: one piece of the probe as a sender plays it between two bursts (float64, full
    scale 1.0)."""
    index = (offset + np.arange(samples)) % probe.size
    out: FloatArray = probe[index] / 32768.0 * _envelope(samples, rate, FADE_S, FADE_S)
    return out
