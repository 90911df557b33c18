"""Find the bursts of one tone in a recording and time each onset to a fraction of a sample.

Three stages per burst:

1. Segmentation: per block (10 ms), the tone's power at ``freq_hz`` (Goertzel) against the rest
   of the block's power. Blocks where the tone dominates enough form runs; short gaps are bridged
   and runs far shorter than a burst (blips) are dropped.
2. Frequency and phase: over the burst's body (its plateau, ramps excluded) the frequency is
   measured from the phase drift between overlapping Hann windows (this is what accepts within
   ``tolerance`` and rejects beyond ``reject``), and a least-squares fit of a sine at the nominal
   frequency gives amplitude, SNR and carrier phase. ``burst`` starts its carrier at phase 0, so
   the phase fixes the onset modulo one period of the tone, with the precision of the whole body.
3. Cycle: of the onsets one period apart that agree with that phase, the one whose raised-cosine
   ramp best explains the samples (least squares with the fitted amplitude) is chosen. When the
   nominal duration is known (``duration_s``) the closing ramp votes too: twice the evidence,
   which is what keeps 0 dB SNR after Opus free of cycle slips.
4. Other tones: if another tone (the other agent's, in full duplex) sits around our ramps, the
   cycle is chosen again jointly: for every candidate, our burst's model is subtracted and the
   other tone fitted to what is left (steady, or with a ramp of its own at any position). The
   spectrum of what is left is only searched when its magnitude leaves room for such a tone.

Cost: two passes over the whole input (Goertzel and energy per block), a minute at a time; the
rest works on each burst's neighbourhood only, in numba kernels (``dsp._kernels``) called a few
times per burst. The input may be a ``dsp.source.Source`` (a recording read from disk on demand):
then no more than a minute of it is in memory at once, and the bursts found are the same.

The fine timing assumes the tone arrives at its nominal frequency (a digital path: no clock
drift between sender and receiver); a codec's constant delay is kept in the onset. Known limit:
when both tones start within about a millisecond of each other the ramps are hard to tell
apart and the onset may be off by one period of the tone (seen in ~1 of 8 such cases).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dsp import _checks, source
from dsp._errors import DspError
from dsp._kernels import (
    block_energy,
    edge_scores,
    edge_terms,
    hann_demod,
    model_residual,
    sine_sums,
)
from dsp.goertzel import goertzel_power
from dsp.source import Source, source_of

# Offsets below and above the nominal frequency can be measured without aliasing up to
# rate / (2 hop): with a 5 ms hop that is +-100 Hz, beyond what the block stage lets through.
_HOP_S = 0.005


@dataclass(frozen=True)
class Burst:
    """One detected burst.

    ``onset``: fractional sample index of the burst waveform's sample 0 (as ``dsp.burst`` places
    it). ``duration``: samples from onset to the end of the closing ramp. ``level_dbfs``: the
    tone's peak amplitude relative to full scale. ``snr_db``: the tone's power over the power of
    everything else in the burst's body (full band). ``freq_hz``: the measured frequency.
    """

    onset: float
    duration: float
    level_dbfs: float
    snr_db: float
    freq_hz: float


def _runs(on: np.ndarray, max_gap: int, min_run: int) -> list[tuple[int, int]]:
    """[start, stop) block ranges where ``on`` holds, bridging gaps of at most ``max_gap``.

    Runs shorter than ``min_run`` blocks are dropped before bridging: a lone block is a click or
    another tone's onset splashing over ours, and must not pull a burst's start forward.
    """
    edges = np.flatnonzero(np.diff(np.concatenate(([0], on.astype(np.int8), [0]))))
    runs: list[tuple[int, int]] = []
    for start, stop in zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True):
        if stop - start < min_run:
            continue
        if runs and start - runs[-1][1] <= max_gap:
            runs[-1] = (runs[-1][0], stop)
        else:
            runs.append((start, stop))
    return runs


def _frequency_offset(x: np.ndarray, n0: int, omega: float, rate: float) -> float:
    """The tone's offset in Hz from ``omega`` over ``x`` (starting at sample ``n0``).

    The phase drift between Hann windows a hop apart, averaged over the body.
    """
    hop = max(1, min(round(_HOP_S * rate), x.shape[0] // 8))
    windows = hann_demod(x, n0, omega, 4 * hop, hop)
    lag = np.sum(windows[1:] * np.conj(windows[:-1]))
    return float(np.angle(lag) * rate / (2 * math.pi * hop))


def _sine_fit(x: np.ndarray, n0: int, omega: float) -> tuple[float, float, float]:
    """Least-squares ``g sin(omega (n - tau))`` over ``x``: (g, omega tau, residual power)."""
    cc, cs, ss, xc, xs, xx = sine_sums(x, n0, omega)
    det = cc * ss - cs * cs
    if det <= 0:
        return 0.0, 0.0, xx / x.shape[0]
    alpha = (ss * xc - cs * xs) / det  # x ~ alpha cos + beta sin
    beta = (cc * xs - cs * xc) / det
    residual = xx - 2 * (alpha * xc + beta * xs) + alpha * alpha * cc
    residual += 2 * alpha * beta * cs + beta * beta * ss
    # g sin(w n - theta) = g cos(theta) sin(w n) - g sin(theta) cos(w n)
    gain = math.hypot(alpha, beta)
    return gain, math.atan2(-alpha, beta), max(residual, 0.0) / x.shape[0]


class _Edges:
    """Least-squares scores of candidate ramp positions over one region of a segment (whose
    carrier, our burst's sine, is kept for the model of ``_other_tone``)."""

    def __init__(
        self, x: np.ndarray, first: int, stop: int, omega: float, theta: float, gain: float
    ):
        self.first = first
        self.carrier, self.u, self.s2, self.v_cum = edge_terms(x, first, stop, omega, theta, gain)
        self.gain = gain

    def scores(self, taus: np.ndarray, ramp: float, rising: bool) -> np.ndarray:
        return edge_scores(self.v_cum, self.u, self.s2, self.first, taus, ramp, rising, self.gain)


def _best_end(
    x: np.ndarray, lo: float, hi: float, ramp: float, omega: float, theta: float, gain: float
) -> float:
    """Where the closing ramp ends, searched on finer and finer grids over [lo, hi]."""
    edges = _Edges(
        x, max(0, math.floor(lo - ramp) - 1), min(x.shape[0], math.ceil(hi) + 2), omega, theta, gain
    )
    best, step = 0.5 * (lo + hi), 16.0
    grid = np.arange(lo, hi + step, step)
    while True:
        best = float(grid[np.argmax(edges.scores(grid, ramp, rising=False))])
        if step <= 0.125:
            return best
        grid = best + np.arange(-step, step + step / 8, step / 8)
        step /= 8


def detect_bursts(
    samples: np.ndarray | Source,
    sample_rate: float,
    freq_hz: float,
    *,
    tolerance: float = 0.015,
    reject: float = 0.035,
    min_duration_s: float = 0.05,
    min_snr_db: float = -10.0,
    min_level_dbfs: float = -60.0,
    ramp_s: float = 0.005,
    duration_s: float | None = None,
    block: int = 480,
    max_gap_s: float = 0.02,
    progress: Callable[[int], None] | None = None,
) -> list[Burst]:
    """Every burst of ``freq_hz`` in ``samples`` (1-D int16, float32 or float64, or a
    ``dsp.source.Source`` of them), in time order.

    A tone is detected within ``tolerance`` (relative, default 1.5 %) of ``freq_hz`` and rejected
    beyond ``reject`` (3.5 %); the decision threshold lies halfway between. A block counts as tone
    when the tone's power is at least ``min_snr_db`` over the rest of the block and its peak
    level at least ``min_level_dbfs``; runs of such blocks (gaps up to ``max_gap_s`` bridged)
    shorter than ``min_duration_s`` are ignored. ``ramp_s`` must match the sender's ramps;
    ``duration_s``, when the nominal burst length is known, makes cycle choice more robust. A
    burst already under way at the first sample is not reported (its onset is not recorded); one
    cut by the end of the recording is, with the duration it has in the recording.
    ``progress``, when given, is told how many samples from the start are dealt with, as the
    bursts are timed one by one (the end last).
    """
    rate = _checks.positive("sample_rate", sample_rate)
    freq = _checks.frequency("freq_hz", freq_hz, rate)
    tol = _checks.positive("tolerance", tolerance)
    rej = _checks.positive("reject", reject)
    if not tol < rej < 1:
        raise DspError(f"reject must lie between tolerance ({tol}) and 1, got {reject!r}")
    min_duration = _checks.non_negative("min_duration_s", min_duration_s) * rate
    threshold = 10 ** (_checks.finite("min_snr_db", min_snr_db) / 10)
    floor_level = 10 ** (_checks.finite("min_level_dbfs", min_level_dbfs) / 20)
    ramp = _checks.non_negative("ramp_s", ramp_s) * rate
    nominal = None
    if duration_s is not None:
        nominal = _checks.positive("duration_s", duration_s) * rate
        if nominal < 2 * ramp:
            raise DspError(
                f"duration_s must be at least twice ramp_s ({2 * ramp_s} s), got {duration_s!r}"
            )
    size = _checks.count("block", block, minimum=16)
    max_gap = round(_checks.non_negative("max_gap_s", max_gap_s) * rate / size)
    x = source_of(samples)

    n_blocks = x.size // size
    if n_blocks == 0:
        if progress is not None:
            progress(x.size)
        return []
    scale = _checks.full_scale(x.dtype)
    tone, energy = _block_powers(x, n_blocks, size, rate, freq)
    tone *= 2.0 / size**2  # amplitude**2 / 2
    rest = np.maximum(energy / size - tone, 0.0)
    on = (tone >= threshold * rest) & (tone >= 0.5 * (floor_level * scale) ** 2)

    search = _Search(
        rate=rate,
        freq=freq,
        omega=2 * math.pi * freq / rate,
        period=rate / freq,
        accept=0.5 * (tol + rej) * freq,
        ramp=ramp,
        nominal=nominal,
        size=size,
        scale=scale,
    )
    found: list[Burst] = []
    min_run = 2 if min_duration >= 4 * size else 1
    for b0, b1 in _runs(on, max_gap, min_run):
        if (b1 - b0 + 2) * size < min_duration:
            continue  # a blip: far shorter than a burst even allowing for partial blocks
        if b0 == 0 and tone[0] >= 0.5 * np.median(tone[:b1]):
            continue  # under way at the first sample: its onset is not in the recording
        burst = _locate(x, b0, b1, n_blocks, search)
        if burst is not None and burst.duration >= min_duration:
            found.append(burst)
        if progress is not None:
            progress(b1 * size)
    if progress is not None:
        progress(x.size)
    return found


def _block_powers(
    x: Source, n_blocks: int, size: int, rate: float, freq: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per block, the tone's Goertzel power and the block's energy, a chunk
    (`source.CHUNK_SAMPLES`) at a time."""
    tone, energy = np.empty(n_blocks), np.empty(n_blocks)
    step = max(source.CHUNK_SAMPLES // size, 1)
    for b in range(0, n_blocks, step):
        k = min(step, n_blocks - b)
        chunk = np.ascontiguousarray(x.read(b * size, (b + k) * size))
        tone[b : b + k] = goertzel_power(chunk, rate, [freq], size)[:, 0]
        block_energy(chunk, 0, k, size, energy[b : b + k])
    return tone, energy


@dataclass(frozen=True)
class _Search:
    """What ``detect_bursts`` looks for, in samples and radians per sample."""

    rate: float
    freq: float
    omega: float  # the tone, radians per sample
    period: float  # the tone, samples per cycle
    accept: float  # largest accepted frequency offset, Hz
    ramp: float  # samples
    nominal: float | None  # nominal burst length in samples, when known
    size: int  # block length
    scale: float  # full scale of the input


def _locate(x: Source, b0: int, b1: int, n_blocks: int, search: _Search) -> Burst | None:
    """Time one run of tone blocks [b0, b1); None when its frequency is not ours.

    Works on a float64 copy of the run plus a margin (the segment), never the whole input.
    """
    size, ramp, nominal = search.size, search.ramp, search.nominal
    omega, period, rate, freq = search.omega, search.period, search.rate, search.freq
    accept, scale = search.accept, search.scale
    margin = 3 * size + math.ceil(ramp)
    seg_lo = max(0, b0 * size - margin)
    seg_hi = min(x.size, b1 * size + margin)
    seg = x.read(seg_lo, seg_hi).astype(np.float64)
    start, stop = b0 * size - seg_lo, b1 * size - seg_lo  # the run, in segment samples

    body_lo, body_hi = start + size + math.ceil(ramp), stop - size - math.ceil(ramp)
    if body_hi - body_lo < size:
        body_lo, body_hi = start + size // 2, stop - size // 2
    if body_hi - body_lo < 8:
        return None
    body = seg[body_lo:body_hi]
    offset_hz = _frequency_offset(body, body_lo, omega, rate)
    if abs(offset_hz) > accept:
        return None
    gain, theta, residual = _sine_fit(body, body_lo, omega)
    if gain <= 0:
        return None

    # Onsets agreeing with the phase, from two blocks before the first tone block to two after.
    lo, hi = max(0.0, start - 2.0 * size), start + 2.0 * size
    tau0 = (theta / omega) % period
    taus = tau0 + period * np.arange(
        math.ceil((lo - tau0) / period), math.floor((hi - tau0) / period) + 1
    )
    if taus.size == 0:
        return None
    regions = [(max(0, math.floor(lo) - 1), min(seg.shape[0], math.ceil(hi + ramp) + 2))]
    if nominal is not None and math.ceil(hi + nominal) + 2 <= seg.shape[0]:
        regions.append((max(0, math.floor(lo + nominal - ramp) - 1), math.ceil(hi + nominal) + 2))
    edges = [_Edges(seg, first, stop_, omega, theta, gain) for first, stop_ in regions]
    onset = _best_onset(edges, taus, ramp, nominal)
    # Another tone (the other agent's, in full duplex) around our ramps leaks into their scores.
    # If one shows once our burst's model is out of the way, choose the cycle again with the
    # other tone fitted (steady, or with a ramp of its own) for every candidate, and use the
    # samples with it removed from then on.
    end = math.inf if nominal is None else onset + nominal
    others = [
        _other_tone(seg, region, onset, end, ramp, gain, rate, freq, accept * 2) for region in edges
    ]
    if any(other is not None for other in others):
        totals = np.zeros(taus.shape[0])
        fits: list[np.ndarray | None] = []
        for (first, stop_), other in zip(regions, others, strict=True):
            data = seg[first:stop_]
            residuals = data[None, :] - np.stack(
                [_model(first, stop_, tau, ramp, nominal, omega, theta, gain) for tau in taus]
            )
            totals -= np.einsum("ij,ij->i", residuals, residuals)
            if other is None:
                fits.append(None)
                continue
            explained, per_candidate = _envelope_fits(residuals, first, other, ramp)
            totals += explained
            fits.append(per_candidate)
        best = int(np.argmax(totals))
        onset = float(taus[best])
        seg = seg.copy()
        for (first, stop_), fit in zip(regions, fits, strict=True):
            if fit is not None:
                seg[first:stop_] -= fit[best]

    if b1 == n_blocks and seg_hi == x.size and stop + size >= seg.shape[0]:
        end = float(seg.shape[0])  # cut by the end of the recording
    else:
        end = _best_end(
            seg,
            max(onset, stop - size - ramp),
            min(seg.shape[0] - 1.0, stop + size + ramp),
            ramp,
            omega,
            theta,
            gain,
        )
    tone_power = 0.5 * gain * gain
    return Burst(
        onset=seg_lo + onset,
        duration=end - onset,
        level_dbfs=20 * math.log10(gain / scale),
        snr_db=10 * math.log10(tone_power / max(residual, tone_power * 1e-30)),
        freq_hz=freq + offset_hz,
    )


def _best_onset(edges: list[_Edges], taus: np.ndarray, ramp: float, nominal: float | None) -> float:
    """The candidate onset whose rising (and, with ``nominal``, falling) ramp fits best."""
    scores = edges[0].scores(taus, ramp, rising=True)
    if nominal is not None and len(edges) > 1:
        scores = scores + edges[1].scores(taus + nominal, ramp, rising=False)
    return float(taus[np.argmax(scores)])


def _other_tone(
    seg: np.ndarray,
    region: _Edges,
    onset: float,
    end: float,
    ramp: float,
    gain: float,
    rate: float,
    freq: float,
    band: float,
) -> float | None:
    """``_tone_outside`` of what our burst's model leaves over ``region`` (floor: 0.1 gain).

    The spectrum is only searched when the residual could hold such a tone at all: a bound
    from the residual's magnitude rules it out in one pass (the usual case: nothing else there).
    """
    floor = 0.1 * gain
    residual, bound = model_residual(seg, region.first, region.carrier, onset, end, ramp, gain)
    if bound < 0.99 * floor:  # 0.99: margin for rounding, not for the bound
        return None
    return _tone_outside(residual, rate, freq, band, floor)


def _model(
    first: int,
    stop: int,
    onset: float,
    ramp: float,
    nominal: float | None,
    omega: float,
    theta: float,
    gain: float,
) -> np.ndarray:
    """Our burst over samples [first, stop): rising ramp at ``onset``, falling at its end."""
    n = np.arange(first, stop, dtype=np.float64)

    def ramp_weight(t: np.ndarray) -> np.ndarray:
        inside = np.clip(t / ramp, 0.0, 1.0) if ramp > 0 else (t > 0).astype(np.float64)
        return 0.5 - 0.5 * np.cos(np.pi * inside)

    envelope = ramp_weight(n - onset)
    if nominal is not None:
        envelope *= ramp_weight(onset + nominal - n)
    return gain * envelope * np.sin(omega * n - theta)


def _tone_outside(
    residual: np.ndarray, rate: float, freq: float, band: float, floor: float
) -> float | None:
    """Radians per sample of the strongest tone in ``residual`` more than ``band`` Hz from
    ``freq``; None when no such tone reaches amplitude ``floor`` or stands out of the noise."""
    size = residual.shape[0]
    window = np.hanning(size)
    n_fft = 1 << max(12, size.bit_length() + 1)
    spectrum = np.abs(np.fft.rfft(residual * window, n_fft))
    bins = np.fft.rfftfreq(n_fft, 1.0 / rate)
    spectrum[(np.abs(bins - freq) <= band) | (bins < 20.0)] = 0.0
    peak = int(np.argmax(spectrum))
    amplitude = 2.0 * spectrum[peak] / window.sum()
    tonal = spectrum[peak] > 10.0 * np.mean(spectrum)
    if amplitude < floor or not tonal or not 0 < peak < spectrum.shape[0] - 1:
        return None
    left, mid, right = np.log(spectrum[peak - 1 : peak + 2] + 1e-300)
    curve = left - 2.0 * mid + right
    delta = 0.5 * (left - right) / curve if curve < 0 else 0.0
    return 2.0 * math.pi * (peak + delta) / n_fft


def _envelope_fits(
    residuals: np.ndarray, first: int, omega: float, ramp: float
) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares fit of a tone at ``omega`` to each row of ``residuals`` (samples from
    ``first``): steady, or rising or falling with a ramp like ours at every few samples.

    Returns, per row, the drop in squared residual of the best envelope, and that fit.
    """
    size = residuals.shape[1]
    phase = omega * np.arange(first, first + size)
    cos, sin = np.cos(phase), np.sin(phase)
    n = np.arange(size, dtype=np.float64)
    edges = np.arange(-ramp, size + ramp, 4.0)
    steps = np.clip((n[None, :] - edges[:, None]) / max(ramp, 1.0), 0.0, 1.0)
    rising = 0.5 - 0.5 * np.cos(np.pi * steps)
    envelopes = np.concatenate((np.ones((1, size)), rising, 1.0 - rising))
    squares = envelopes * envelopes
    cc, cs, ss = squares @ (cos * cos), squares @ (cos * sin), squares @ (sin * sin)
    det = np.maximum(cc * ss - cs * cs, 1e-300)
    rc = (residuals * cos) @ envelopes.T  # (rows, envelopes)
    rs = (residuals * sin) @ envelopes.T
    alpha, beta = (ss * rc - cs * rs) / det, (cc * rs - cs * rc) / det
    explained = alpha * rc + beta * rs
    best = np.argmax(explained, axis=1)
    rows = np.arange(residuals.shape[0])
    a, b = alpha[rows, best], beta[rows, best]
    fitted = envelopes[best] * (a[:, None] * cos + b[:, None] * sin)
    return explained[rows, best], fitted
