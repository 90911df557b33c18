"""echoproof's signal processing: tone bursts, Goertzel tone power, burst detection and timing,
voice activity (onset and offset of any sound).

Needs numpy and numba only (no LiveKit). Every bad argument raises ``DspError``, a
``ValueError`` whose message names the argument and the value found.
"""

from dsp._errors import DspError
from dsp.bursts import Burst, detect_bursts
from dsp.goertzel import GoertzelStream, goertzel_power
from dsp.tone import FRAME_SAMPLES, SAMPLE_RATE, ToneGenerator, burst
from dsp.voice import Segment, Voice, find_voice

__all__ = [
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "Burst",
    "DspError",
    "GoertzelStream",
    "Segment",
    "ToneGenerator",
    "Voice",
    "burst",
    "detect_bursts",
    "find_voice",
    "goertzel_power",
]
