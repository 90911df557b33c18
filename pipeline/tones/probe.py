"""The speech-like probe each speaker plays between its tone bursts, and where it plays it.

Tones prove that audio arrived and when; the probe says how it sounds (verify scores it with
ViSQOL, `verify.quality`). The config's `probe` block (`pipeline.config.probe`; null: no probe):

    "probe": {"share": 0.5, "seed": 1, "file": null}

- `share`: the part of the run that carries the probe. The sender's stream is cut into
  segments of `SEGMENT_S`; segment i carries the probe when ceil((i+1) share) > ceil(i share),
  so 0.5 is every other segment from the first, 1 is all of them.
- `seed`: the artificial voice (`dsp.speech.artificial_voice`) is drawn from it.
- `file`: a user's own speech instead (WAV, FLAC or OGG, any rate: read with soundfile, mono,
  resampled to 48 kHz with scipy's polyphase filter). `--probe FILE` sets it.

In a segment that carries it, each gap between two of the sender's bursts holds one piece of the
probe, `GUARD_S` clear of either burst (so the burst detector and the latency figures see the
tones exactly as without a probe), each piece the next stretch of the probe signal. The band
`dsp.speech.TONE_GUARD_HZ` around both tones is removed from the probe for the same reason.
The signal goes in the run folder (`probe.wav`) and the pieces in `<sender>.probe.csv`.

`ECHOPROOF_FAULT_PROBE_RATE` (tests only, `pipeline.config.faults`) makes one sender play its
probe audio at the wrong rate: each piece comes out pitched and slowed, cut to its slot. The
tones stay exact: they are the instrument.
"""

from __future__ import annotations

import csv
import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
from scipy.signal import resample_poly

from dsp import speech
from echoproof.contract import PROBE, PROBE_HEADER, ROLES, SAMPLE_RATE, probe_name
from pipeline.config.faults import RateFault
from pipeline.config.probe import ProbeConfig
from pipeline.errors import ConfigError
from pipeline.script import Int16Array, Script
from pipeline.tones.schedule import Burst

#: Segment length: the unit verify scores (ViSQOL wants seconds of speech, not one piece).
SEGMENT_S = 8.0
#: Silence kept between a piece and either neighbouring burst.
GUARD_S = 0.1
#: A gap shorter than this after the guards carries no piece.
MIN_PIECE_S = 0.2
#: Length of the synthetic probe signal; pieces wrap round to its start.
SYNTHETIC_S = 30.0
#: The longest user file taken (the rest is ignored): it is copied into every run folder.
MAX_FILE_S = 120.0
FILE_SUFFIXES = (".wav", ".flac", ".ogg")


def load_file(path: Path, tones_hz: tuple[float, float]) -> Int16Array:
    """A user's speech as the probe: mono, 48 kHz, the tones' bands removed, int16.

    Raises ConfigError naming the file when it cannot be read or holds no audio.
    """
    if path.suffix.lower() not in FILE_SUFFIXES:
        raise ConfigError(
            f"probe file {path} is {path.suffix or 'without suffix'}; expected WAV, FLAC or OGG."
        )
    try:
        data, rate = soundfile.read(str(path), dtype="float64", always_2d=True)
    except (OSError, RuntimeError) as exc:  # soundfile's errors are RuntimeErrors
        raise ConfigError(f"probe file {path} cannot be read: {exc}.") from None
    mono = data.mean(axis=1)[: round(MAX_FILE_S * rate)]
    if rate != SAMPLE_RATE:
        g = math.gcd(int(rate), SAMPLE_RATE)
        mono = resample_poly(mono, SAMPLE_RATE // g, int(rate) // g)
    if mono.size < SAMPLE_RATE or not np.any(mono):
        raise ConfigError(f"probe file {path} holds less than 1 s of sound; expected speech.")
    cleared = speech.clear_tones(mono, SAMPLE_RATE, tones_hz)
    # The user's level is kept unless it would clip after filtering.
    peak = float(np.abs(cleared).max())
    return speech.to_int16(cleared / peak * 0.9 if peak > 0.9 else cleared)


def synthetic(seed: int, tones_hz: tuple[float, float]) -> Int16Array:
    """The artificial voice of `seed`, `SYNTHETIC_S` long, the tones' bands removed, int16."""
    voice = speech.artificial_voice(seed, SYNTHETIC_S, SAMPLE_RATE)
    return speech.to_int16(speech.clear_tones(voice, SAMPLE_RATE, tones_hz))


@dataclass(frozen=True)
class Piece:
    """One stretch of the probe in a sender's stream: `samples` from `start_sample`, playing the
    probe signal from `probe_sample` (modulo its length); `segment` is its scoring unit."""

    id: int
    segment: int
    start_sample: int
    samples: int
    probe_sample: int

    @property
    def end_sample(self) -> int:
        """One past the piece's last sample."""
        return self.start_sample + self.samples


def carries(segment: int, share: float) -> bool:
    """Whether segment `segment` carries the probe at `share` (evenly spread, from segment 0)."""
    return math.ceil((segment + 1) * share - 1e-9) > math.ceil(segment * share - 1e-9)


def plan(bursts: list[Burst], share: float, probe_samples: int) -> list[Piece]:
    """The pieces one sender plays between its `bursts`, in order."""
    guard = round(GUARD_S * SAMPLE_RATE)
    shortest = round(MIN_PIECE_S * SAMPLE_RATE)
    segment_samples = round(SEGMENT_S * SAMPLE_RATE)
    pieces: list[Piece] = []
    used = 0
    for before, after in itertools.pairwise(bursts):
        start, end = before.end_sample + guard, after.start_sample - guard
        segment = start // segment_samples
        if end - start < shortest or not carries(segment, share):
            continue
        pieces.append(Piece(len(pieces), segment, start, end - start, used % probe_samples))
        used += end - start
    return pieces


def probe_script(pieces: list[Piece], probe: Int16Array, fault: RateFault | None) -> Script[Piece]:
    """One sender's probe pieces as a script, mixed into its bursts' (`burst_script`): each piece
    the next stretch of `probe`, played at the wrong rate under `fault`."""

    def audio(p: Piece) -> Int16Array:
        played = speech.piece(probe, p.probe_sample, p.samples, SAMPLE_RATE)
        if fault is not None:
            # Made at audio_hz, played as played_hz: longer and lower; what fits the slot plays.
            g = math.gcd(fault.audio_hz, fault.played_hz)
            stretched = resample_poly(played, fault.audio_hz // g, fault.played_hz // g)
            played = np.zeros(p.samples)
            played[: min(p.samples, stretched.size)] = stretched[: p.samples]
        return speech.to_int16(played)

    return Script(pieces, audio)


def prepare(config: ProbeConfig, tones_hz: tuple[float, float]) -> Int16Array:
    """The probe signal a run plays: the user's file or the artificial voice of the seed."""
    if config.file is not None:
        return load_file(config.file, tones_hz)
    return synthetic(config.seed, tones_hz)


def write_signal(run_dir: Path, signal: Int16Array) -> None:
    """`probe.wav`, written once and whole (soundfile does that; the recordings need the crash-safe
    writer of `pipeline.recording.evidence` instead)."""
    soundfile.write(str(run_dir / PROBE), signal, SAMPLE_RATE, subtype="PCM_16", format="WAV")


def write_pieces(run_dir: Path, role: str, pieces: list[Piece]) -> None:
    """`<role>.probe.csv`: every piece planned (verify scores those `<role>.sent.csv` covers)."""
    with (run_dir / probe_name(role)).open("w", encoding="utf-8", newline="") as f:
        rows = csv.writer(f, lineterminator="\n")
        rows.writerow(PROBE_HEADER)
        rows.writerows((p.id, p.segment, p.start_sample, p.samples, p.probe_sample) for p in pieces)


def manifest_entry(config: ProbeConfig) -> dict[str, Any]:
    """The manifest's `probe`: where its evidence is and how it was made."""
    return {
        "file": PROBE,
        "pieces": {role: probe_name(role) for role in ROLES},
        "source": "synthetic" if config.file is None else "file",
        "name": None if config.file is None else config.file.name,
        "seed": config.seed if config.file is None else None,
        "share": config.share,
        "segment_s": SEGMENT_S,
        "guard_s": GUARD_S,
    }
