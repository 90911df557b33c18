"""The run's recordings: a 48 kHz mono PCM_16 WAV written frame by frame, playable at every
moment, that turns into an RF64 file (EBU Tech 3306) when it outgrows the RIFF format's 4 GiB.

Our own writer rather than soundfile's: libsndfile rewrites a WAV header only when the file is
closed (or on a command soundfile does not expose), so a killed run would leave a file whose
header counts no audio. Reading is soundfile's (`verify.evidence.read_wav`), which reads RF64.

The header is 80 bytes from the start: after `WAVE` a 28-byte `JUNK` chunk holds the room RF64's
`ds64` chunk needs, so that the file becomes RF64 by rewriting its header in place, without
moving 4 GiB of audio. Players and libsndfile skip the `JUNK` chunk of a plain WAV.
"""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import numpy as np
import numpy.typing as npt

from echoproof.contract import CHANNELS, SAMPLE_RATE, SAMPLE_WIDTH

HEADER_BYTES = 80  # RIFF 12, JUNK or ds64 36, fmt 24, the data chunk's header 8
RIFF_LIMIT = 0xFFFF_FFFF  # the largest size a RIFF header's 32-bit fields can hold
# Tests only: a lower limit, so that a short run's recordings become RF64 (`RIFF_LIMIT_ENV`).
RIFF_LIMIT_ENV = "ECHOPROOF_WAV_RIFF_LIMIT"
_DS64_BYTES = 28  # riff size, data size, sample count (8 bytes each), table length (4)
_BLOCK = CHANNELS * SAMPLE_WIDTH


def riff_limit() -> int:
    """The size past which a recording is written as RF64: `RIFF_LIMIT`, or the test switch's."""
    value = os.environ.get(RIFF_LIMIT_ENV)
    return RIFF_LIMIT if not value else max(HEADER_BYTES, min(int(value), RIFF_LIMIT))


def header(samples: int, rf64: bool) -> bytes:
    """The 80-byte header of a recording holding `samples` samples, as RIFF/WAVE or RF64."""
    data = _BLOCK * samples
    fmt = struct.pack(
        "<4sIHHIIHH", b"fmt ", 16, 1, CHANNELS, SAMPLE_RATE, SAMPLE_RATE * _BLOCK, _BLOCK, 16
    )
    riff = HEADER_BYTES - 8 + data
    if rf64:
        ds64 = struct.pack("<4sIQQQI", b"ds64", _DS64_BYTES, riff, data, samples, 0)
        head = struct.pack("<4sI4s", b"RF64", RIFF_LIMIT, b"WAVE") + ds64
        return head + fmt + struct.pack("<4sI", b"data", RIFF_LIMIT)
    junk = struct.pack("<4sI", b"JUNK", _DS64_BYTES) + bytes(_DS64_BYTES)
    head = struct.pack("<4sI4s", b"RIFF", riff, b"WAVE") + junk
    return head + fmt + struct.pack("<4sI", b"data", data)


class WavWriter:
    """One recording, written frame by frame (see the module docstring).

    Samples go to the file at once; the header's sizes are patched once per `PATCH_SAMPLES`
    (100 ms of audio) rather than per frame, since the seek and the write per frame add up with
    many pairs. A process killed at any moment leaves a valid WAV (or RF64) missing at most the
    last 100 ms.
    """

    PATCH_SAMPLES = SAMPLE_RATE // 10

    def __init__(self, path: Path, limit: int | None = None) -> None:
        self.path = path
        self.samples = 0
        self.rf64 = False
        self._limit = riff_limit() if limit is None else limit
        self._patched = 0  # samples the header on disk counts
        self._file: io.BufferedWriter | None = path.open("wb")
        # Sizes 0: even an empty recording is a valid WAV.
        self._file.write(header(0, rf64=False))
        self._file.flush()

    def write(self, pcm: npt.NDArray[np.int16] | bytes | memoryview) -> None:
        """Append int16 samples; the header counts them within 100 ms of audio."""
        if self._file is None:
            raise ValueError(f"{self.path.name} is closed")
        data = pcm.tobytes() if isinstance(pcm, np.ndarray) else bytes(pcm)
        self._file.write(data)
        self.samples += len(data) // SAMPLE_WIDTH
        if self.samples - self._patched >= self.PATCH_SAMPLES:
            self.flush()

    def flush(self) -> None:
        """Put every sample on disk, then make the header count them (as RF64 once the file
        would outgrow the limit)."""
        f = self._file
        if f is None or self._patched == self.samples:
            return
        f.flush()  # the data first: the header never counts samples the file lacks
        self.rf64 = self.rf64 or HEADER_BYTES - 8 + _BLOCK * self.samples > self._limit
        os.pwrite(f.fileno(), header(self.samples, self.rf64), 0)
        self._patched = self.samples

    def close(self) -> None:
        """Finish the file; safe to call twice."""
        if self._file is None:
            return
        try:
            self.flush()
        finally:
            f, self._file = self._file, None
            f.close()
