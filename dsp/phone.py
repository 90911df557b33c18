"""A narrow-band telephone path: what a caller's voice goes through on the public phone network.

`phone_path(x, rate)` resamples to 8 kHz (scipy's polyphase filter, which removes everything above
4 kHz first), encodes each sample as G.711 mu-law (8 bits), decodes it, and resamples back to
`rate`. The filter is linear-phase and centred, so the path adds no delay: the speech's bounds
stay where they were.

The codec is G.711's, as CPython's `audioop.lin2ulaw` / `ulaw2lin` had it (removed in 3.13),
in numpy: a 16-bit sample keeps its top 14 bits, is biased by 33 and coded as a sign, a 3-bit
segment (its power of two) and 4 bits of mantissa, all inverted.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import numpy.typing as npt

from dsp import _checks

FloatArray = npt.NDArray[np.float64]
PHONE_RATE = 8000
_SEG_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)
_CLIP = 8159  # the largest 14-bit magnitude G.711 codes
_BIAS = 0x84


def ulaw_encode(pcm: npt.NDArray[np.int16]) -> npt.NDArray[np.uint8]:
    """16-bit linear samples as G.711 mu-law bytes."""
    v = _checks.samples("pcm", pcm, allow_empty=True).astype(np.int32) >> 2
    negative = v < 0
    mask = np.where(negative, 0x7F, 0xFF)
    magnitude = np.minimum(np.where(negative, -v, v), _CLIP) + (_BIAS >> 2)
    seg = np.searchsorted(_SEG_END, magnitude, side="left")
    mantissa = (magnitude >> np.minimum(seg + 1, 31)) & 0x0F
    code = np.where(seg >= 8, 0x7F, (seg << 4) | mantissa)
    return np.asarray((code ^ mask) & 0xFF, dtype=np.uint8)


def ulaw_decode(codes: npt.NDArray[np.uint8]) -> npt.NDArray[np.int16]:
    """G.711 mu-law bytes as 16-bit linear samples."""
    u = (~codes.astype(np.int32)) & 0xFF
    t = (((u & 0x0F) << 3) + _BIAS) << ((u & 0x70) >> 4)
    return np.asarray(np.where(u & 0x80, _BIAS - t, t - _BIAS), dtype=np.int16)


def phone_path(x: FloatArray, rate: int) -> FloatArray:
    """`x` (full scale 1.0, at `rate` Hz) as heard through an 8 kHz mu-law telephone line."""
    from scipy.signal import resample_poly

    samples = _checks.samples("x", x).astype(np.float64)
    down = Fraction(PHONE_RATE, int(_checks.positive("rate", rate)))
    narrow = resample_poly(samples, down.numerator, down.denominator)
    pcm = np.clip(np.round(narrow * 32767.0), -32768, 32767).astype(np.int16)
    line = ulaw_decode(ulaw_encode(pcm)).astype(np.float64) / 32767.0
    back = resample_poly(line, down.denominator, down.numerator)
    out = np.zeros(samples.size)
    out[: min(back.size, out.size)] = back[: out.size]
    return out
