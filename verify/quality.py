"""How the probe sounds on arrival: a ViSQOL MOS-LQO per segment, and the pitch it arrives at.

The reference is what the sender played (`probe.wav` cut into the pieces of
`<sender>.probe.csv`, faded as `dsp.speech.piece` fades them); the received pieces are cut from
the receiver's WAV where the burst timing already measured puts them: a piece at sender sample
`s` is at `s + onset - (start + ref)` in the recording, with `onset`, `start` of the detected burst
nearest to it (the same sender -> receiver mapping the latency figures use). A piece whose place
lies outside the recording is heard as silence, which is what the listener got.

Score. ViSQOL v3 in speech mode (`visqol-python`, a port of google/visqol; numba accelerated),
both signals resampled to the 16 kHz it works at (scipy's polyphase filter), one score per
segment (`pipeline.tones.probe.SEGMENT_S` of the sender's stream: seconds of speech, as ViSQOL
wants), summarised per direction by the mean and the lowest. The quality mapper is the
exponential fit of NSIM that ViSQOL calls its polynomial mapper, scaled so that a perfect
signal scores 5.0: the deep-lattice mapper (C++ ViSQOL's default, via TFLite) was trained on
natural speech and scores our artificial voice at most 3.8 against itself (measured), so an
absolute threshold could not be read on it; the exponential fit needs no extra runtime
(the lattice needs ai-edge-litert, 21 MB). Its known bias: it is lenient on degraded speech, so
`min_mos` is set from measured runs (`verify.thresholds`).

Pitch. Per segment, the long-term spectra of the reference and the received pieces are compared
on a logarithmic frequency axis; the shift that best aligns them is the ratio of frequencies
heard to frequencies sent (1.0 on a digital path). A sender that plays 24 kHz audio as 22.05 kHz
shows 0.919 in every segment. A rate mismatch is constant over a run, while a jitter buffer
draining after a host stall shortens and stretches what it plays (and the pieces' places move
with it), which reads as a ratio far from 1 in those segments only. So segments that overlap a
host disturbance (`verify.host.disturbances`) are left out of the direction's ratio (the median
of the others) and named (`pitch_segments_left_out`), and `max_pitch_shift_pct` names a
sample-rate mismatch only when every judged segment is shifted the same way, within the limit
of each other. With no judged segment left, a shift seen consistently in the disturbed ones is
the host's to explain (the verdict is then inconclusive, never a named rate). The MOS of a
disturbed segment stays in the figures; a low one there is the host's to explain too.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.signal import resample_poly, welch

from dsp import speech
from dsp.source import Source, source_of
from verify.errors import EvidenceError
from verify.host import BOUNDS, NEAR_S, Disturbance, Failure, Window
from verify.thresholds import Thresholds
from verify.timing import round_stable

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

VISQOL_RATE = 16_000  # ViSQOL's speech mode works at 16 kHz
MAPPER = "exponential"  # see the module docstring
# Pitch: spectra between these frequencies, compared over this range of ratios.
_PITCH_BAND_HZ = (150.0, 6000.0)
_PITCH_RANGE = 0.6  # up to 1.6x either way: 16 <-> 24 kHz (1.5x) is within
_PITCH_STEP = 0.0005  # natural-log steps of the frequency axis
# At least this much received probe audio, seconds, before a pitch is stated.
_PITCH_MIN_S = 2.0
#: A segment with less probe than this (a run stopped early) is not scored: ViSQOL's speech
#: mode needs about a second of speech to find its patches, and a score on less says little.
MIN_SEGMENT_S = 2.0
#: A re-check accepts a MOS this far from the signed one (ViSQOL is deterministic on one machine;
#: this allows for another CPU's floating point in its FFTs and numba kernels).
MOS_TOLERANCE = 0.01
MOS_FIELDS = (".mos", ".mos_min")  # report paths ending so are compared with MOS_TOLERANCE
# A host stall this long may disturb the probe: its drain may explain a segment's low score, and
# the segment is left out of the pitch (a receive gap's bound; shorter stalls stay inside the
# jitter buffer's usual depth).
QUALITY_STALL_MS = BOUNDS["customer_recv_gap_ms"]


@dataclasses.dataclass(frozen=True)
class Pieces:
    """One `<sender>.probe.csv`: per piece its segment, start in the sender's stream, length, and
    where in the probe signal it starts."""

    piece: IntArray
    segment: IntArray
    start_sample: IntArray
    samples: IntArray
    probe_sample: IntArray

    def __len__(self) -> int:
        return len(self.piece)

    @property
    def segments(self) -> int:
        """How many segments the pieces make (the short ones are not scored)."""
        return int(np.unique(self.segment).size)

    def first(self, n: int) -> Pieces:
        """The first `n` pieces."""
        return Pieces(*(getattr(self, f.name)[:n] for f in dataclasses.fields(self)))


@functools.cache
def _visqol() -> Any:
    """ViSQOL in speech mode with the exponential mapper; built once per process."""
    import numba

    # Its kernels run in parallel (numba). Numba would pick GNU OpenMP, after which a fork
    # aborts the process, and verify forks a worker per direction: the workqueue layer is
    # fork-safe (visqol asks for it too, but only through the environment, read when numba
    # was first imported, by dsp). It is not thread-safe: `mos` holds `_LOCK`.
    numba.config.THREADING_LAYER = "workqueue"  # type: ignore[attr-defined]
    from visqol import VisqolApi  # a second of imports and kernel loading: only when needed

    api = VisqolApi()
    api.create(mode="speech", use_lattice_model=False)
    return api


_LOCK = threading.Lock()

#: A re-check (`python -m verify`) scores again every segment of a direction that has at most
#: this many; beyond, the `RECHECK_LOWEST` the signed report scored lowest and `RECHECK_DRAWN`
#: more drawn from the rest, seeded by the signed report's digest (no one picks them), and
#: carries the others' signed scores (`--full`: every segment). The MOS costs about 0.4 CPU s
#: per segment: an hour's 450 segments per direction would take minutes, 16 take seconds.
RECHECK_ALL_UP_TO = 16
# What a segment's score is made of (`score`, then `sent_s`): what a re-check carries.
SEGMENT_FIELDS = ("segment", "pieces", "mos", "pitch_ratio", "sent_s")
RECHECK_LOWEST = 8
RECHECK_DRAWN = 8


@dataclasses.dataclass(frozen=True)
class Recheck:
    """Which segments a re-check scores again: per direction label, the signed segments."""

    seed: int
    signed: dict[str, list[dict[str, Any]]]

    def sample(self, label: str) -> tuple[frozenset[int], list[dict[str, Any]]] | None:
        """The segments of `label` to score again and the signed ones carried as they are;
        None when every segment is scored again."""
        signed = self.signed.get(label) or []
        if len(signed) <= RECHECK_ALL_UP_TO:
            return None
        by_mos = sorted(signed, key=lambda s: (s["mos"], s["segment"]))
        chosen = {int(s["segment"]) for s in by_mos[:RECHECK_LOWEST]}
        rest = sorted(int(s["segment"]) for s in signed if int(s["segment"]) not in chosen)
        rng = np.random.default_rng(self.seed)
        chosen.update(int(x) for x in rng.choice(rest, min(RECHECK_DRAWN, len(rest)), False))
        carried = [s for s in signed if int(s["segment"]) not in chosen]
        return frozenset(chosen), carried


def mos(reference: FloatArray, degraded: FloatArray, rate: int) -> float:
    """ViSQOL speech-mode MOS-LQO of `degraded` against `reference` (both float at `rate` Hz)."""
    g = math.gcd(rate, VISQOL_RATE)
    ref = resample_poly(reference, VISQOL_RATE // g, rate // g)
    deg = resample_poly(degraded, VISQOL_RATE // g, rate // g)
    if not np.any(deg):
        return 1.0  # nothing heard: ViSQOL's floor (it cannot compare against silence)
    with _LOCK:
        return float(_visqol().measure_from_arrays(ref, deg, VISQOL_RATE).moslqo)


def pitch_ratio(reference: FloatArray, degraded: FloatArray, rate: int) -> float | None:
    """Frequencies heard / frequencies sent, from the long-term spectra; None when too little was
    heard to tell."""
    if np.count_nonzero(degraded) < _PITCH_MIN_S * rate:
        return None
    grid = np.arange(math.log(_PITCH_BAND_HZ[0]), math.log(_PITCH_BAND_HZ[1]), _PITCH_STEP)

    def log_spectrum(x: FloatArray) -> FloatArray:
        freqs, power = welch(x, fs=rate, nperseg=8192)
        level = np.log(np.interp(np.exp(grid), freqs, power) + 1e-20)
        return (level - level.mean()) / (level.std() or 1.0)

    ref, deg = log_spectrum(reference), log_spectrum(degraded)
    span = round(math.log(1 + _PITCH_RANGE) / _PITCH_STEP)
    n = grid.size
    scores = np.array(
        [
            float(np.dot(ref[max(0, -k) : n - max(0, k)], deg[max(0, k) : n - max(0, -k)]))
            / (n - abs(k))
            for k in range(-span, span + 1)
        ]
    )
    best = int(np.argmax(scores))
    shift = float(best)
    if 0 < best < scores.size - 1:  # a parabola through the peak and its neighbours
        a, b, c = scores[best - 1 : best + 2]
        if a - 2 * b + c < 0:
            shift += 0.5 * (a - c) / (a - 2 * b + c)
    return math.exp((shift - span) * _PITCH_STEP)


def score(
    received: npt.NDArray[np.int16] | Source,
    probe: npt.NDArray[np.int16],
    pieces: Pieces,
    anchors: tuple[FloatArray, FloatArray],
    rate: int,
    only: frozenset[int] | None = None,
    *,
    on_segment: Callable[[], None] | None = None,
) -> list[dict[str, Any]]:
    """Per segment `{"segment", "pieces", "mos", "pitch_ratio"}`: every segment, or those in
    `only`. Segments holding less than `MIN_SEGMENT_S` of probe are left out.

    `anchors`: per detected burst, its start in the sender's stream and the offset (received
    sample - sent sample) it was heard at. With no anchor nothing can be placed: no segment.
    `on_segment` is called as each segment's score is done (progress).
    """
    at, offset = anchors
    if not len(pieces) or not len(at):
        return []
    heard = source_of(received, "received", allow_empty=True)
    segments: list[dict[str, Any]] = []
    for segment in np.unique(pieces.segment).tolist():
        if only is not None and segment not in only:
            continue
        members = np.flatnonzero(pieces.segment == segment)
        if pieces.samples[members].sum() < MIN_SEGMENT_S * rate:
            continue
        refs, degs = [], []
        for i in members.tolist():
            start, n = int(pieces.start_sample[i]), int(pieces.samples[i])
            refs.append(speech.piece(probe, int(pieces.probe_sample[i]), n, rate))
            nearest = int(np.argmin(np.abs(at - (start + n / 2))))
            degs.append(_cut(heard, start + round(float(offset[nearest])), n))
        ref, deg = np.concatenate(refs), np.concatenate(degs)
        segments.append(
            {
                "segment": segment,
                "pieces": len(refs),
                "mos": mos(ref, deg, rate),
                "pitch_ratio": pitch_ratio(ref, deg, rate),
            }
        )
        if on_segment is not None:
            on_segment()
    return segments


def _cut(samples: Source, start: int, n: int) -> FloatArray:
    """`n` samples from `start` as float, silence where the recording does not reach."""
    out = np.zeros(n)
    a, z = max(start, 0), min(start + n, samples.size)
    if a < z:
        out[a - start : z - start] = samples.read(a, z) / 32768.0
    return out


def check_probe(probe: npt.NDArray[np.int16], name: str) -> None:
    """A probe signal must hold sound."""
    if probe.size == 0:
        raise EvidenceError(f"{name} holds no samples, expected the probe signal")


def figures(segments: list[dict[str, Any]], segment_s: float) -> dict[str, Any]:
    """A direction's `quality` block: the summary, then the segments in order. The pitch is
    judged once the host's disturbances are known (`judge`)."""
    scores = [s["mos"] for s in segments]
    return {
        "mapper": MAPPER,
        "segment_s": segment_s,
        "mos": round_stable(float(np.mean(scores)), 3) if scores else None,
        "mos_min": round_stable(min(scores), 3) if scores else None,
        "segments_scored": len(segments),
        "pitch_ratio": None,
        "pitch_segments_left_out": [],
        "segments": [
            {
                **s,
                "mos": round_stable(s["mos"], 3),
                "pitch_ratio": None
                if s["pitch_ratio"] is None
                else round_stable(s["pitch_ratio"], 4),
                "disturbed": False,
            }
            for s in sorted(segments, key=lambda s: s["segment"])
        ],
    }


def judge(q: dict[str, Any], disturbed: list[Disturbance]) -> None:
    """Mark the segments that overlap a disturbance whose stall could reach the audio (at least
    `QUALITY_STALL_MS`, or a freeze) and take the direction's pitch ratio from the others (the
    module docstring), in place."""
    able = [d for d in disturbed if d.freeze or d.stall_ms >= QUALITY_STALL_MS]
    for s in q["segments"]:
        s["disturbed"] = s["sent_s"] is not None and any(
            d.overlaps(s["sent_s"], s["sent_s"] + q["segment_s"]) for d in able
        )
    judged = [s["pitch_ratio"] for s in q["segments"] if not s["disturbed"]]
    known = [r for r in judged if r is not None]
    q["pitch_ratio"] = round_stable(float(np.median(known)), 4) if known else None
    q["pitch_segments_left_out"] = [s["segment"] for s in q["segments"] if s["disturbed"]]


def _shifted(ratios: list[float], limit_pct: float) -> float | None:
    """The median of `ratios` when all are shifted beyond `limit_pct` the same way and lie within
    it of each other (a constant rate mismatch); else None."""
    if not ratios:
        return None
    limit = limit_pct / 100
    low, high = min(ratios), max(ratios)
    if not (high < 1 - limit or low > 1 + limit) or high / low - 1 > limit:
        return None
    return float(np.median(ratios))


def failures(label: str, q: dict[str, Any] | None, thresholds: Thresholds) -> list[Failure]:
    """A direction's failed quality thresholds: MOS below `min_mos` (a host stall near a low
    segment may explain it); the probe's pitch shifted beyond `max_pitch_shift_pct` in every
    judged segment (a sample-rate mismatch: never the host's), or, with none judged, in every
    disturbed one (the host's to explain)."""
    out: list[Failure] = []
    if q is None:
        return out
    segment_s = q["segment_s"]
    if q["mos"] is not None and q["mos"] < thresholds.min_mos:
        low = [s for s in q["segments"] if s["mos"] < thresholds.min_mos]
        worst = min(q["segments"], key=lambda s: s["mos"])
        windows = tuple(
            Window(s["sent_s"] - NEAR_S, s["sent_s"] + segment_s + NEAR_S, QUALITY_STALL_MS)
            for s in low
        )
        out.append(
            Failure(
                f"{label}: speech quality MOS {q['mos']:g} (ViSQOL; lowest {worst['mos']:g} at "
                f"{worst['sent_s']:g} s) is below the minimum {thresholds.min_mos:g}",
                windows,
                direction=label,
            )
        )
    limit = thresholds.max_pitch_shift_pct
    judged = [s for s in q["segments"] if not s["disturbed"] and s["pitch_ratio"] is not None]
    if judged:
        ratio = _shifted([s["pitch_ratio"] for s in judged], limit)
        if ratio is not None:
            out.append(
                Failure(
                    f"{label}: the probe arrives pitched {_shift(ratio)} (heard/sent frequency "
                    f"ratio {round(ratio, 4):g}, the same in all {len(judged)} judged segments), "
                    f"beyond {limit:g} %: a sample-rate mismatch, e.g. {_mismatch(ratio)}",
                    host_may_explain=False,
                    direction=label,
                )
            )
        return out
    disturbed = [s for s in q["segments"] if s["disturbed"] and s["pitch_ratio"] is not None]
    ratio = _shifted([s["pitch_ratio"] for s in disturbed], limit)
    if ratio is not None:
        out.append(
            Failure(
                f"{label}: the probe arrives pitched {_shift(ratio)} (ratio {round(ratio, 4):g}) "
                f"beyond {limit:g} %, in segments a host stall disturbed only: no segment was "
                "left to judge a sample-rate mismatch on",
                tuple(Window(s["sent_s"], s["sent_s"] + segment_s) for s in disturbed),
                direction=label,
            )
        )
    return out


def _shift(ratio: float) -> str:
    return f"{abs(ratio - 1) * 100:.1f} % {'low' if ratio < 1 else 'high'}"


# Rates audio is commonly made and played at: a ratio is named after the nearest pair.
_RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000)


def _mismatch(ratio: float) -> str:
    """The common pairs of rates nearest `ratio`: 'A kHz audio played as B kHz' (several pairs
    share a ratio: 24 -> 22.05 and 48 -> 44.1)."""
    pairs = sorted(
        ((a, b) for a in _RATES for b in _RATES if a != b),
        key=lambda pair: abs(math.log(pair[1] / pair[0] / ratio)),
    )
    best = abs(math.log(pairs[0][1] / pairs[0][0] / ratio))
    near = [p for p in pairs if abs(math.log(p[1] / p[0] / ratio)) <= best + 1e-3]
    return " or ".join(f"{a / 1000:g} kHz audio played as {b / 1000:g} kHz" for a, b in near[:2])
