"""Gaps: stretches of sent burst audio that the receiver did not hear.

Definition (per direction). Each burst's plateau (the burst without its ramps) is cut into 5 ms
blocks; a block is *heard* when the tone's amplitude in it (the magnitude of its projection on
the sender's frequency) is at least half the direction's reference amplitude (the median block
amplitude over the plateaus of the detected bursts). A *gap* is a run of unheard blocks; runs
with no heard block between them merge across the pauses between bursts, so an outage that
spans several bursts is one gap. Its edges, in the sender's stream:

- it starts where the tone stopped: inside a burst, at the first unheard block, moved back over
  the blocks before it that are already fading (below `FADE_RATIO` of the burst's median heard
  amplitude: the receiver's concealment fades a lost tone out over tens of ms, and that is not
  the sent audio) to the first fading block's start, or with no fade forward by the share of
  the first unheard block still holding tone (its amplitude / the previous block's) for an abrupt
  cut; at a burst's first block, at the burst's first sample;
- it ends where the tone resumed: at the first heard block after it, moved back by the share of
  the block before it holding tone (a stream resumes abruptly); or, when the next burst is heard
  from its start, at the end of the last unheard burst (the pause after it was not missing).

`start_s` is when its first missing sample left the sender (the sent frame's time plus the offset
inside it) on the run's clock (seconds after the manifest's `clock.monotonic_ns`); `duration_ms`
is the length of the missing stretch of the sender's stream (samples / 48 kHz), so it is not
moved by event-loop jitter. Receiver positions map to the sender's stream by the burst's offset
(received onset minus sent onset), taken as the median over the detected bursts within
`OFFSET_SPAN` bursts, so a burst heard only from the middle (its onset misplaced) does not move it.
Gaps shorter than `MIN_GAP_MS` are not reported. Bursts sent outside the receiver's recording or
heard only after the matching window ("late") are not examined and end a gap before them.

Glitches and gaps. A glitch counts runs of 5 ms blocks below half the burst's own median RMS
inside one detected burst. A dropout of at least `MIN_GAP_MS` inside a burst is both one glitch
and one gap; shorter ones are glitches only. A lost burst is no glitch but is (part of) a gap.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import numpy.typing as npt

GAP_BLOCK = 240  # 5 ms blocks at 48 kHz
HEARD_RATIO = 0.5  # tone amplitude at least -6 dB of the reference: heard
FADE_RATIO = 0.9  # below this share of the burst's level, a block before a gap is fading out
MIN_GAP_MS = 20.0  # shorter stretches are not reported as gaps (glitches still count them)
OFFSET_SPAN = 3  # bursts either side whose offsets give a burst's receiver position


@dataclasses.dataclass(frozen=True)
class Gap:
    """One gap, in the sender's stream: [start, end) as fractional sample positions."""

    start_sample: float
    end_sample: float
    bursts: list[int]  # ids of the bursts with missing audio


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
    samples: npt.NDArray[np.int16], first: int, blocks: int, tone_hz: float, rate: int
) -> npt.NDArray[np.float64]:
    """Tone amplitude (int16 units) in each of `blocks` blocks from receiver sample `first`."""
    rows = samples[first : first + blocks * GAP_BLOCK].astype(np.float64)
    rows = rows.reshape(blocks, GAP_BLOCK)
    phase = 2.0 * math.pi * tone_hz / rate * np.arange(GAP_BLOCK)
    # a partial tone of k samples in a block gives ~k/N of the amplitude: used to refine edges
    return np.asarray(2.0 / GAP_BLOCK * np.abs(rows @ np.exp(-1j * phase)), dtype=np.float64)


def find_gaps(
    samples: npt.NDArray[np.int16],
    tone_hz: float,
    rate: int,
    *,
    ids: npt.NDArray[np.int64],
    starts: npt.NDArray[np.int64],
    lengths: npt.NDArray[np.int64],
    offsets: npt.NDArray[np.float64],
    usable: npt.NDArray[np.bool_],
    detected: npt.NDArray[np.bool_],
    ramp_samples: int,
    fallback_amplitude: float,
) -> list[Gap]:
    """The gaps of one direction (see the module docstring).

    `offsets`: per burst, receiver sample minus sender sample (NaN: unknown); `usable`: bursts
    to examine; `detected`: bursts whose plateaus set the reference amplitude (else
    `fallback_amplitude`, the sent amplitude in int16 units).
    """
    place = local_offsets(offsets)
    plateaus: list[tuple[int, int, int, npt.NDArray[np.float64]] | None] = []
    for i in range(ids.size):
        first_sent = int(starts[i]) + ramp_samples
        blocks = (int(lengths[i]) - 2 * ramp_samples) // GAP_BLOCK
        if not usable[i] or not math.isfinite(place[i]) or blocks < 1:
            plateaus.append(None)
            continue
        first = first_sent + round(place[i])
        if first < 0 or first + blocks * GAP_BLOCK > samples.size:
            plateaus.append(None)
            continue
        amp = _block_amplitudes(samples, first, blocks, tone_hz, rate)
        plateaus.append((first_sent, first, blocks, amp))
    heard_amps = [p[3] for p, d in zip(plateaus, detected, strict=True) if p is not None and d]
    reference = float(np.median(np.concatenate(heard_amps))) if heard_amps else 0.0
    if reference <= 0.0:
        reference = fallback_amplitude
    limit = HEARD_RATIO * reference

    gaps: list[Gap] = []
    open_start: float | None = None
    open_bursts: list[int] = []
    last_end = 0.0  # sender sample where the last unheard stretch ended

    def close(end: float) -> None:
        nonlocal open_start, open_bursts
        if open_start is not None and (end - open_start) / rate * 1000.0 >= MIN_GAP_MS:
            gaps.append(Gap(float(open_start), float(end), open_bursts))
        open_start, open_bursts = None, []

    for i, plateau in enumerate(plateaus):
        if plateau is None:
            close(last_end)
            continue
        first_sent, _, blocks, amp = plateau
        heard = amp >= limit
        if heard.all():  # the common case, and the only one worth its own fast path
            if open_start is not None:
                close(last_end)
            continue
        level = float(np.median(amp[heard])) if heard.any() else reference
        for m in range(blocks):
            block_start = first_sent + m * GAP_BLOCK
            if not heard[m]:
                if open_start is None:
                    if m == 0:
                        open_start = float(starts[i])
                    else:
                        j = m
                        while j > 0 and amp[j - 1] < FADE_RATIO * level:
                            j -= 1
                        if j == 0:
                            open_start = float(starts[i])
                        elif j < m:  # a fade: it began in or just before block j
                            open_start = float(first_sent + j * GAP_BLOCK)
                        else:
                            share = min(max(amp[j] / amp[j - 1], 0.0), 1.0)
                            open_start = first_sent + (j + share) * GAP_BLOCK
                if not open_bursts or open_bursts[-1] != int(ids[i]):
                    open_bursts.append(int(ids[i]))
                last_end = block_start + GAP_BLOCK
                if m == blocks - 1:
                    last_end = float(starts[i] + lengths[i])
            elif open_start is not None:
                if m == 0:
                    close(last_end)
                else:
                    share = min(max(amp[m - 1] / amp[m], 0.0), 1.0)
                    close(block_start - share * GAP_BLOCK)
    close(last_end)
    return gaps
