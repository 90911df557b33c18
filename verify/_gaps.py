"""Gaps: audio of heard bursts that the receiver did not hear.

Definition (per direction; docs/measurements.md). A gap is a stretch of a *heard* burst's audio
(detected or truncated) that is missing, absent or concealed, for at least `MIN_GAP_MS`. Holes
in different bursts are different gaps, and the planned silence between bursts is never part
of one, so a gap's duration is only audio that was sent and not heard. A burst never heard is
lost, not a gap (`bursts_lost` counts it).

Each heard burst's plateau (the burst without its ramps) is cut into 5 ms blocks; a block is
*heard* when the tone's amplitude in it (the magnitude of its projection on the sender's
frequency, from `dsp.goertzel_power`) is at least half the direction's reference amplitude (the
median block amplitude over the plateaus of the detected bursts). A gap is a run of unheard
blocks inside one plateau. Its edges, in the sender's stream:

- it starts where the tone stopped: at the first unheard block, moved back over the blocks
  before it that are already fading (below `FADE_RATIO` of the burst's median heard amplitude:
  the receiver's concealment fades a lost tone out over tens of ms, and that is not the sent
  audio) to the first fading block's start, or with no fade forward by the share of the first
  unheard block still holding tone (its amplitude / the previous block's) for an abrupt cut; at
  the plateau's first block, at the burst's first sample (a truncated burst's missing start);
- it ends where the tone resumed: at the first heard block after it, moved back by the share of
  the block before it holding tone (a stream resumes abruptly); or at the burst's end.

`start_s` is when its first missing sample left the sender (the sent frame's time plus the offset
inside it) on the run's clock (seconds after the manifest's `clock.monotonic_ns`); `duration_ms`
is the length of the missing stretch of the sender's stream (samples / 48 kHz), so it is not
moved by event-loop jitter. A detected burst is placed in the receiver's recording by its own
onset (received onset minus sent onset). A truncated burst, heard only from the middle, has no
onset of its own to trust: it is placed by the median offset of the detected bursts within
`OFFSET_SPAN` bursts. Placing every burst by its own onset matters after a host stall, when the
jitter buffer drains and the offset moves by tens of ms from one burst to the next.

Glitches and gaps. A glitch counts runs of 5 ms blocks below half the burst's own median RMS
inside one heard burst. A dropout of at least `MIN_GAP_MS` inside a burst is both one glitch
and one gap; shorter ones are glitches only.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import numpy.typing as npt

import dsp
from dsp.source import Source
from verify.evidence import SAMPLE_RATE

GAP_BLOCK = SAMPLE_RATE // 200  # 5 ms blocks
HEARD_RATIO = 0.5  # tone amplitude at least -6 dB of the reference: heard
FADE_RATIO = 0.9  # below this share of the burst's level, a block before a gap is fading out
MIN_GAP_MS = 20.0  # shorter stretches are not reported as gaps (glitches still count them)
OFFSET_SPAN = 3  # bursts either side whose offsets give a burst's receiver position

FloatArray = npt.NDArray[np.float64]


@dataclasses.dataclass(frozen=True)
class Gap:
    """One gap, in the sender's stream: [start, end) as fractional sample positions."""

    start_sample: float
    end_sample: float
    burst: int  # id of the burst whose audio is missing


def local_offsets(offsets: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Per burst, the median of the known offsets (NaN: unknown) within `OFFSET_SPAN` bursts.

    A burst with none near uses the nearest known one; with none at all, NaN everywhere.
    """
    known = np.flatnonzero(np.isfinite(offsets))
    out = np.full(offsets.size, np.nan)
    if not known.size:
        return out
    for i in range(offsets.size):
        lo, hi = np.searchsorted(known, [i - OFFSET_SPAN, i + OFFSET_SPAN + 1])
        near = known[lo:hi]
        if not near.size:
            near = known[[int(np.argmin(np.abs(known - i)))]]
        out[i] = float(np.median(offsets[near]))
    return out


def _block_amplitudes(
    samples: Source, first: int, blocks: int, tone_hz: float, rate: int
) -> FloatArray:
    """Tone amplitude (int16 units) in each of `blocks` blocks from receiver sample `first`.

    A full block of a tone of amplitude A gives |DTFT| = A N / 2 (`dsp.goertzel_power` is its
    square); a partial tone of k samples in a block gives about k/N of A: `_Stretch` uses that
    to place an edge inside a block.
    """
    power = dsp.goertzel_power(
        samples.read(first, first + blocks * GAP_BLOCK), rate, [tone_hz], GAP_BLOCK
    )[:, 0]
    return np.asarray(2.0 / GAP_BLOCK * np.sqrt(np.maximum(power, 0.0)), dtype=np.float64)


@dataclasses.dataclass(frozen=True)
class _Plateau:
    """One examined burst: its extent in the sender's stream and its plateau's block amplitudes."""

    burst: int  # id
    start: int  # sender sample of the burst's first sample
    end: int  # sender sample just after the burst
    first_block: int  # sender sample of the plateau's first block
    amp: FloatArray  # tone amplitude per 5 ms block of the plateau, as received


@dataclasses.dataclass(frozen=True)
class _Stretch:
    """A run of unheard blocks inside one plateau, in sender samples."""

    start: float  # where the tone stopped
    end: float  # where it resumed, or the burst's end


def _plateaus(
    samples: Source,
    tone_hz: float,
    rate: int,
    ids: npt.NDArray[np.int64],
    starts: npt.NDArray[np.int64],
    lengths: npt.NDArray[np.int64],
    place: FloatArray,
    heard: npt.NDArray[np.bool_],
    ramp_samples: int,
) -> list[_Plateau | None]:
    """Per burst, its plateau as received; None for one not examined (not heard, no known
    position, no whole block, or not inside the recording)."""
    out: list[_Plateau | None] = []
    for i in range(ids.size):
        first_sent = int(starts[i]) + ramp_samples
        blocks = (int(lengths[i]) - 2 * ramp_samples) // GAP_BLOCK
        first = first_sent + round(place[i]) if math.isfinite(place[i]) else -1
        if not heard[i] or blocks < 1 or first < 0 or first + blocks * GAP_BLOCK > samples.size:
            out.append(None)
            continue
        amp = _block_amplitudes(samples, first, blocks, tone_hz, rate)
        end = int(starts[i] + lengths[i])
        out.append(_Plateau(int(ids[i]), int(starts[i]), end, first_sent, amp))
    return out


def _stretches(plateau: _Plateau, limit: float, reference: float) -> list[_Stretch]:
    """The plateau's runs of blocks below `limit`, with their edges (module docstring)."""
    amp = plateau.amp
    heard = amp >= limit
    if heard.all():  # the common case
        return []
    level = float(np.median(amp[heard])) if heard.any() else reference
    edges = np.flatnonzero(np.diff(np.concatenate(([1], heard.astype(np.int8), [1]))))
    out = []
    for lo, hi in zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True):
        end = float(plateau.end)
        if hi < amp.size:  # a stream resumes abruptly: back by the share of tone before it
            share = min(max(amp[hi - 1] / amp[hi], 0.0), 1.0)
            end = plateau.first_block + hi * GAP_BLOCK - share * GAP_BLOCK
        out.append(_Stretch(_stop_position(plateau, lo, level), end))
    return out


def _stop_position(plateau: _Plateau, m: int, level: float) -> float:
    """Where the tone stopped before unheard block `m`: back over the fading blocks before it
    to the first one's start, else forward by the share of block `m` still holding tone; at
    the burst's first sample when that reaches the plateau's first block."""
    amp = plateau.amp
    j = m
    while j > 0 and amp[j - 1] < FADE_RATIO * level:
        j -= 1
    if j == 0:
        return float(plateau.start)
    if j < m:  # a fade: it began in or just before block j
        return float(plateau.first_block + j * GAP_BLOCK)
    share = min(max(amp[j] / amp[j - 1], 0.0), 1.0)
    return plateau.first_block + (j + share) * GAP_BLOCK


def find_gaps(
    samples: Source,
    tone_hz: float,
    rate: int,
    *,
    ids: npt.NDArray[np.int64],
    starts: npt.NDArray[np.int64],
    lengths: npt.NDArray[np.int64],
    offsets: FloatArray,
    heard: npt.NDArray[np.bool_],
    ramp_samples: int,
    fallback_amplitude: float,
) -> list[Gap]:
    """The gaps of one direction (see the module docstring).

    `offsets`: per burst, receiver sample minus sender sample of a detected burst's onset (NaN:
    not detected); `heard`: bursts to examine (detected or truncated). The detected bursts'
    plateaus set the reference amplitude (else `fallback_amplitude`, the sent amplitude in
    int16 units).
    """
    detected = np.isfinite(offsets)
    place = np.where(detected, offsets, local_offsets(offsets))
    plateaus = _plateaus(samples, tone_hz, rate, ids, starts, lengths, place, heard, ramp_samples)
    heard_amps = [p.amp for p, d in zip(plateaus, detected, strict=True) if p is not None and d]
    reference = float(np.median(np.concatenate(heard_amps))) if heard_amps else 0.0
    if reference <= 0.0:
        reference = fallback_amplitude
    limit = HEARD_RATIO * reference
    gaps = []
    for plateau in plateaus:
        if plateau is None:
            continue
        for stretch in _stretches(plateau, limit, reference):
            if (stretch.end - stretch.start) / rate * 1000.0 >= MIN_GAP_MS:
                gaps.append(Gap(float(stretch.start), float(stretch.end), plateau.burst))
    return gaps
