"""What the Customer says to an agent under test: utterances, their turns, and the audio sent.

An utterance is an audio file (WAV, FLAC, OGG at any rate and channel count: read with `soundfile`,
mixed to mono, resampled to 48 kHz with `scipy.signal.resample_poly`) or, without `--say`, the
Customer's tone burst. A turn is one utterance said at a known sample of the Customer's stream;
the Customer first listens one answer window (a greeting may come), then says each utterance in
turn, listening one answer window after each, for as long as the conversation lasts.

Recorded prompts and TTS output start and end in silence (a few hundred ms), and a caller waits
from the end of its speech, not of its file: so each utterance also knows where its speech is,
found by `dsp.find_voice`, the detector verify times the agent's audio with (`speech_bounds`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import numpy.typing as npt

import dsp
from echoproof.contract import FRAME_SAMPLES, SAMPLE_RATE
from pipeline.errors import ConfigError
from pipeline.script import Int16Array, Script

MAX_UTTERANCE_S = 600.0


@dataclasses.dataclass(frozen=True)
class Utterance:
    """One thing the Customer says: where it came from, the SHA-256 of its bytes, its audio."""

    source: str  # the file's name, or "tone <hz> Hz"
    sha256: str  # of the file as read (a tone: of its int16 samples)
    pcm: Int16Array  # 48 kHz mono
    speech: tuple[int, int]  # the speech's first sample in `pcm`, and one past its last
    text: str | None = None  # the words said, when known (not for a --say file)

    @property
    def samples(self) -> int:
        """Its length at 48 kHz."""
        return int(self.pcm.size)


@dataclasses.dataclass(frozen=True)
class Turn:
    """Utterance `utterance` said from sample `start_sample` of the Customer's stream; its
    speech from `speech_start_sample`, `speech_samples` long."""

    id: int
    utterance: int
    start_sample: int
    samples: int
    speech_start_sample: int
    speech_samples: int

    @property
    def end_sample(self) -> int:
        """One past its last sample."""
        return self.start_sample + self.samples

    @property
    def speech_end_sample(self) -> int:
        """One past its speech's last sample."""
        return self.speech_start_sample + self.speech_samples


def load(path: Path) -> Utterance:
    """The file at `path` as an utterance; ConfigError says why it cannot be one."""
    import soundfile

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"--say file {path} cannot be read ({exc.strerror}).") from None
    try:
        audio, rate = soundfile.read(io.BytesIO(data), dtype="float64", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as exc:
        raise ConfigError(
            f"--say file {path} is not audio soundfile can read ({exc}); expected WAV, FLAC or OGG."
        ) from None
    if audio.shape[0] == 0:
        raise ConfigError(f"--say file {path} holds no audio; expected at least one sample.")
    if audio.shape[0] / rate > MAX_UTTERANCE_S:
        raise ConfigError(
            f"--say file {path} lasts {audio.shape[0] / rate:g} s; expected at most "
            f"{MAX_UTTERANCE_S:g} s per utterance."
        )
    pcm = to_48k(audio.mean(axis=1), rate)
    speech = speech_bounds(pcm, f"--say file {path}")
    return Utterance(path.name, hashlib.sha256(data).hexdigest(), pcm, speech)


def speech_bounds(pcm: Int16Array, what: str) -> tuple[int, int]:
    """Where the speech in `pcm` starts and ends (one past its last sample), found as verify finds
    the agent's audio (`dsp.find_voice`) in the utterance between silences, as the Customer says
    it: so a file that is sound throughout (a tone) is speech throughout. Whole samples, widened
    by less than one. ConfigError when `what` holds no sound."""
    pad = np.zeros(max(pcm.size, SAMPLE_RATE // 10), dtype=np.int16)
    voice = dsp.find_voice(np.concatenate([pad, pcm, pad]), SAMPLE_RATE)
    if not voice.segments:
        raise ConfigError(
            f"{what} holds no sound above {voice.threshold_dbfs:.0f} dBFS; expected speech."
        )
    onset = math.floor(voice.segments[0].onset) - pad.size
    offset = math.ceil(voice.segments[-1].offset) - pad.size
    return max(onset, 0), min(offset, pcm.size)


def to_48k(mono: npt.NDArray[np.float64], rate: int) -> Int16Array:
    """Float samples (full scale 1.0) at `rate` Hz as 48 kHz int16, clipped."""
    if rate != SAMPLE_RATE:
        from scipy.signal import resample_poly

        ratio = Fraction(SAMPLE_RATE, int(rate))
        mono = resample_poly(mono, ratio.numerator, ratio.denominator)
    return np.asarray(np.clip(np.round(mono * 32767.0), -32768, 32767), dtype=np.int16)


def tone(waveform: Int16Array, hz: float) -> Utterance:
    """The tone burst as an utterance."""
    speech = speech_bounds(waveform, f"the {hz:g} Hz tone burst")
    return Utterance(
        f"tone {hz:g} Hz", hashlib.sha256(waveform.tobytes()).hexdigest(), waveform, speech
    )


def turns(utterances: list[Utterance], *, duration_s: float, window_s: float) -> list[Turn]:
    """Every turn of a conversation of `duration_s`: listen `window_s`, say the next utterance,
    and so on, while the utterance and the window after it fit; each starts on a frame boundary."""
    out: list[Turn] = []
    at = _frames_up(window_s)
    end = round(duration_s * SAMPLE_RATE)
    while True:
        u = len(out) % len(utterances)
        n = utterances[u].samples
        if at + n + round(window_s * SAMPLE_RATE) > end:
            return out
        onset, offset = utterances[u].speech
        out.append(Turn(len(out), u, at, n, at + onset, offset - onset))
        at = _frames_up((at + n) / SAMPLE_RATE + window_s)


def _frames_up(seconds: float) -> int:
    return math.ceil(round(seconds * SAMPLE_RATE) / FRAME_SAMPLES) * FRAME_SAMPLES


def needed_s(utterances: list[Utterance], window_s: float) -> float:
    """The shortest conversation that holds one turn."""
    return (_frames_up(window_s) + utterances[0].samples) / SAMPLE_RATE + window_s


def turn_script(utterances: list[Utterance], turns: list[Turn]) -> Script[Turn]:
    """The Customer's stream: each turn's utterance from its start sample."""
    return Script(turns, lambda turn: utterances[turn.utterance].pcm)
