"""A received recording read a stretch at a time, never whole.

An hour's WAV is 345 MB of int16; verify's figures need a minute of it at a time (the burst
detector's segmentation, the waveform's columns) or a burst's neighbourhood (timing, glitches,
gaps, the probe's pieces). `Recording` checks the file as `evidence.read_wav` always did, then
reads what is asked with a seek: a `dsp.source.Source`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Self

import numpy as np
import numpy.typing as npt
import soundfile

from dsp import source
from echoproof.contract import SAMPLE_RATE
from verify.errors import EvidenceError

# A recording past 4 GiB is RF64 (pipeline.recording.wav), RIFF/WAVE's 64-bit form.
WAV_FORMATS = ("WAV", "RF64")
# libsndfile reads what is there and notes in its log a header claiming more.
_SHORT_DATA = re.compile(r"^data\s*:\s*(\d+) \(should be (\d+)\)", re.MULTILINE)

Int16Array = npt.NDArray[np.int16]


class Recording:
    """A 48 kHz mono 16-bit PCM WAV (or RF64), open for reading stretches of it.

    Opening checks the format and raises :class:`EvidenceError` naming the file; no path is a
    recording of nothing (a missing file, which the verdict names). `size` may be cut (`cut`) to
    the part the arrivals cover. Close it (or use ``with``); closing twice is safe.
    """

    dtype = np.dtype(np.int16)

    def __init__(self, path: Path | None) -> None:
        self._file: soundfile.SoundFile | None = None
        self.size = 0
        if path is None:  # no file: a recording of nothing
            self.name = ""
            return
        self.name = path.name
        if not path.is_file():
            raise EvidenceError(f"{self.name} is missing")
        try:
            self._file = soundfile.SoundFile(str(path))
        except soundfile.LibsndfileError as exc:
            raise self._unreadable(exc) from None
        except OSError as exc:
            raise EvidenceError(f"{self.name} cannot be read: {exc.strerror}") from None
        try:
            self._check(self._file)
        except BaseException:
            self._file.close()
            raise
        self.size = int(self._file.frames)

    def _check(self, f: soundfile.SoundFile) -> None:
        name = self.name
        if f.format not in WAV_FORMATS:
            raise EvidenceError(f"{name} is not a RIFF/WAVE file ({f.format} found)")
        if f.subtype != "PCM_16":
            raise EvidenceError(f"{name} is {f.subtype}, expected 16-bit PCM")
        if f.channels != 1:
            raise EvidenceError(f"{name} has {f.channels} channels, expected 1 (mono)")
        if f.samplerate != SAMPLE_RATE:
            raise EvidenceError(
                f"{name} is sampled at {f.samplerate} Hz, expected {SAMPLE_RATE} Hz"
            )
        short = _SHORT_DATA.search(f.extra_info)
        if short:
            raise EvidenceError(
                f"{name} is truncated: its header announces {short[1]} bytes of audio, "
                f"the file holds {short[2]}"
            )

    def _unreadable(self, exc: soundfile.LibsndfileError) -> EvidenceError:
        return EvidenceError(
            f"{self.name} is not a RIFF/WAVE file libsndfile can read ({exc.error_string})"
        )

    def read(self, start: int, stop: int) -> Int16Array:
        """Samples `[start, stop)`, cut to `[0, size)` (empty when nothing is left)."""
        start, stop = max(start, 0), min(stop, self.size)
        if stop <= start or self._file is None:
            return np.zeros(0, np.int16)
        try:
            self._file.seek(start)
            samples: Int16Array = self._file.read(stop - start, dtype="int16")
        except soundfile.LibsndfileError as exc:
            raise self._unreadable(exc) from None
        if samples.size != stop - start:
            raise EvidenceError(
                f"{self.name} gave {samples.size} samples from {start}, expected {stop - start}"
            )
        return samples

    def envelope(self, columns: int) -> tuple[Int16Array, Int16Array, int]:
        """The min and max of each of up to `columns` equal stretches of the file, and the
        stretch's length in samples (a tail shorter than one is left out); read a chunk of
        stretches at a time."""
        per = max(self.size // max(columns, 1), 1)
        count = self.size // per
        low, high = np.zeros(count, np.int16), np.zeros(count, np.int16)
        step = max(source.CHUNK_SAMPLES // per, 1)
        for c in range(0, count, step):
            k = min(step, count - c)
            body = self.read(c * per, (c + k) * per).reshape(k, per)
            low[c : c + k], high[c : c + k] = body.min(axis=1), body.max(axis=1)
        return low, high, per

    def cut(self, size: int) -> None:
        """Read no further than `size` samples (the part the arrivals cover)."""
        self.size = min(self.size, size)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_wav(path: Path) -> Int16Array:
    """The samples of a 48 kHz mono 16-bit PCM WAV (or RF64), whole: for short files (the
    probe, a figure's input); anything else raises naming the file."""
    with Recording(path) as recording:
        return recording.read(0, recording.size)
