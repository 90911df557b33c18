"""An Opus encode/decode round trip with PyAV (libopus), as the WebRTC path does to audio.

Used by ``benchmarks/dsp.py`` and the dsp tests; PyAV is only needed here, never by ``dsp``.
"""

from __future__ import annotations

import av
import numpy as np

SAMPLE_RATE = 48000


def opus_round_trip(samples: np.ndarray, bit_rate: int = 32000) -> np.ndarray:
    """``samples`` (48 kHz mono int16) through libopus and back; the codec's delay is kept."""
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate = SAMPLE_RATE
    encoder.layout = "mono"
    encoder.format = "s16"
    encoder.bit_rate = bit_rate
    encoder.open()
    decoder = av.CodecContext.create("libopus", "r")
    decoder.sample_rate = SAMPLE_RATE
    decoder.layout = "mono"
    decoder.format = "s16"
    size = encoder.frame_size or 960
    padded = np.zeros(-(-samples.shape[0] // size) * size, dtype=np.int16)
    padded[: samples.shape[0]] = samples
    packets = []
    for start in range(0, padded.shape[0], size):
        frame = av.AudioFrame.from_ndarray(
            padded[None, start : start + size], format="s16", layout="mono"
        )
        frame.sample_rate = SAMPLE_RATE
        frame.pts = start
        packets.extend(encoder.encode(frame))
    packets.extend(encoder.encode(None))
    decoded = [
        frame.to_ndarray().reshape(-1) for packet in packets for frame in decoder.decode(packet)
    ]
    return np.concatenate(decoded).astype(np.int16)
