"""Background noise for a caller's speech: pink noise, babble, and mixing at an SNR.

Every generator is deterministic from its seed (numpy's PCG64, float64), so a script's turn sounds
the same on every machine:

- `pink`: 1/f noise (3 dB less power per octave, as many real backgrounds), made by shaping white
  Gaussian noise's spectrum by 1/sqrt(f) (DC removed);
- `babble`: a crowd talking at once, `BABBLE_TALKERS` artificial voices (`dsp.speech`'s P.50-like
  voice, each with its own seed and so its own pitch and syllables) summed. No recording is needed,
  and the babble has speech's long-term spectrum and a rhythm that smears with the talker count.

`mix_at_snr(speech, noise, snr_db, bounds)` scales the noise so that the speech's power over its
bounds (from its first sound to its last, as `dsp.find_voice` finds them) over the noise's power
over the whole clip is `snr_db`, fading the noise in and out over `FADE_S` at the clip's edges
(a hard edge would be a click the agent hears as speech).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from dsp import _checks
from dsp._errors import DspError
from dsp.speech import artificial_voice

FloatArray = npt.NDArray[np.float64]
KINDS = ("pink", "babble")
BABBLE_TALKERS = 6
FADE_S = 0.01


def pink(samples: int, seed: int) -> FloatArray:
    """`samples` of pink noise at unit RMS from `seed`."""
    n = _checks.count("samples", samples)
    rng = np.random.default_rng(_checks.count("seed", seed, minimum=0))
    spectrum = np.fft.rfft(rng.standard_normal(n))
    scale = np.zeros(spectrum.size)
    scale[1:] = 1.0 / np.sqrt(np.arange(1, spectrum.size))  # no DC
    noise = np.fft.irfft(spectrum * scale, n)
    return _unit(noise)


def babble(samples: int, rate: int, seed: int, talkers: int = BABBLE_TALKERS) -> FloatArray:
    """`samples` of `talkers` artificial voices talking at once, at unit RMS, from `seed`."""
    n = _checks.count("samples", samples)
    first = _checks.count("seed", seed, minimum=0) * talkers
    duration_s = n / _checks.positive("rate", rate)
    voices = [artificial_voice(first + k, duration_s, rate)[:n] for k in range(talkers)]
    total = np.zeros(n)
    for v in voices:
        total[: v.size] += v
    return _unit(total)


def make(kind: str, samples: int, rate: int, seed: int) -> FloatArray:
    """Noise of `kind` (one of `KINDS`) at unit RMS."""
    if kind == "pink":
        return pink(samples, seed)
    if kind == "babble":
        return babble(samples, rate, seed)
    raise DspError(f"kind is {kind!r}; expected one of {', '.join(KINDS)}")


def mix_at_snr(
    speech: FloatArray, noise: FloatArray, snr_db: float, bounds: tuple[int, int], rate: int
) -> FloatArray:
    """`speech` with `noise` (as long) added at `snr_db` against the speech inside `bounds`."""
    x = _checks.samples("speech", speech).astype(np.float64)
    n = _checks.samples("noise", noise).astype(np.float64)
    if n.size != x.size:
        raise DspError(f"noise has {n.size} samples; expected {x.size}, as the speech")
    start, end = bounds
    if not 0 <= start < end <= x.size:
        raise DspError(f"bounds are {bounds}; expected 0 <= start < end <= {x.size}")
    fade = min(round(FADE_S * rate), x.size // 2)
    shaped = n.copy()
    if fade:
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(fade) / fade)
        shaped[:fade] *= ramp
        shaped[x.size - fade :] *= ramp[::-1]
    speech_power = power(x[start:end])
    gain = math.sqrt(speech_power / (power(shaped) * 10 ** (_checks.finite("snr_db", snr_db) / 10)))
    return x + gain * shaped


def power(x: FloatArray) -> float:
    """Mean square; a silent or empty signal raises (there is nothing to set a level against)."""
    p = float(np.mean(np.square(x))) if x.size else 0.0
    if p <= 0.0:
        raise DspError("the signal is silent; expected sound to measure a level against")
    return p


def snr_db(speech: FloatArray, noise: FloatArray, bounds: tuple[int, int]) -> float:
    """The ratio `mix_at_snr` sets: speech power inside `bounds` over noise power, in dB."""
    return 10 * math.log10(power(speech[bounds[0] : bounds[1]]) / power(noise))


def _unit(x: FloatArray) -> FloatArray:
    return x / math.sqrt(power(x))
