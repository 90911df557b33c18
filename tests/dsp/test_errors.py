"""Every bad input raises DspError with one sentence naming the argument and the value."""

from __future__ import annotations

import numpy as np
import pytest

import dsp

GOOD = np.zeros(4800, np.int16)


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda: dsp.goertzel_power(GOOD, 0, [440.0]), ["sample_rate", "0"]),
        (lambda: dsp.goertzel_power(GOOD, -48000, [440.0]), ["sample_rate", "-48000"]),
        (lambda: dsp.goertzel_power(GOOD, float("nan"), [440.0]), ["sample_rate", "nan"]),
        (lambda: dsp.goertzel_power(GOOD, 48000, [24000.0]), ["freqs_hz", "Nyquist", "24000.0"]),
        (lambda: dsp.goertzel_power(GOOD, 48000, [440.0, -1.0]), ["freqs_hz", "-1.0"]),
        (lambda: dsp.goertzel_power(GOOD, 48000, []), ["freqs_hz", "non-empty"]),
        (lambda: dsp.goertzel_power(GOOD, 48000, "440"), ["freqs_hz", "'440'"]),
        (lambda: dsp.goertzel_power(GOOD, 48000, [440.0], block=0), ["block", "0"]),
        (lambda: dsp.goertzel_power(GOOD.astype(np.int32), 48000, [440.0]), ["samples", "int32"]),
        (
            lambda: dsp.goertzel_power(np.zeros((2, 480)), 48000, [440.0]),
            ["samples", "1-D", "(2, 480)"],
        ),
        (lambda: dsp.goertzel_power(np.zeros(0), 48000, [440.0]), ["samples", "empty"]),
        (
            lambda: dsp.goertzel_power([0.0] * 480, 48000, [440.0]),
            ["samples", "numpy array", "list"],
        ),
        (
            lambda: dsp.goertzel_power(np.array([0.0, np.nan]), 48000, [440.0]),
            ["samples", "nan", "index 1"],
        ),
        (
            lambda: dsp.goertzel_power(np.array([np.inf, 0.0]), 48000, [440.0]),
            ["samples", "inf", "index 0"],
        ),
        (lambda: dsp.GoertzelStream(48000, [440.0]).process(np.zeros((480, 1))), ["frame", "1-D"]),
        (lambda: dsp.GoertzelStream(0, [440.0]), ["sample_rate", "0"]),
        (lambda: dsp.GoertzelStream(48000, [30000.0]), ["freqs_hz", "30000.0"]),
        (lambda: dsp.ToneGenerator(440.0, sample_rate=0), ["sample_rate", "0"]),
        (lambda: dsp.ToneGenerator(24000.0), ["freq_hz", "Nyquist", "24000.0"]),
        (lambda: dsp.ToneGenerator(440.0, amplitude=1.5), ["amplitude", "1.5"]),
        (lambda: dsp.ToneGenerator(440.0).frame(0), ["samples", "0"]),
        (lambda: dsp.burst(440.0, 0.0), ["duration_s", "0.0"]),
        (lambda: dsp.burst(440.0, 0.3, offset=-1.0), ["offset", "-1.0"]),
        (lambda: dsp.burst(440.0, 0.3, offset=float("nan")), ["offset", "nan"]),
        (lambda: dsp.burst(440.0, 0.3, ramp_s=0.2), ["ramp_s", "0.2"]),
        (lambda: dsp.burst(440.0, 0.3, amplitude=0.0), ["amplitude", "0.0"]),
        (lambda: dsp.burst(-440.0, 0.3), ["freq_hz", "-440.0"]),
        (lambda: dsp.burst(440.0, 0.3, sample_rate=800), ["freq_hz", "Nyquist", "440.0"]),
        (lambda: dsp.detect_bursts(GOOD, 48000, 0.0), ["freq_hz", "0.0"]),
        (lambda: dsp.detect_bursts(GOOD, 48000, 25000.0), ["freq_hz", "25000.0"]),
        (lambda: dsp.detect_bursts(GOOD, 0, 440.0), ["sample_rate", "0"]),
        (lambda: dsp.detect_bursts(np.zeros(0, np.int16), 48000, 440.0), ["samples", "empty"]),
        (lambda: dsp.detect_bursts(GOOD.astype(np.uint8), 48000, 440.0), ["samples", "uint8"]),
        (lambda: dsp.detect_bursts(np.full(480, np.nan), 48000, 440.0), ["samples", "nan"]),
        (lambda: dsp.detect_bursts(GOOD, 48000, 440.0, tolerance=0.05), ["reject", "0.035"]),
        (lambda: dsp.detect_bursts(GOOD, 48000, 440.0, tolerance=-0.1), ["tolerance", "-0.1"]),
        (
            lambda: dsp.detect_bursts(GOOD, 48000, 440.0, min_duration_s=-1),
            ["min_duration_s", "-1"],
        ),
        (lambda: dsp.detect_bursts(GOOD, 48000, 440.0, duration_s=0.001), ["duration_s", "0.001"]),
        (lambda: dsp.detect_bursts(GOOD, 48000, 440.0, block=4), ["block", "4"]),
        (
            lambda: dsp.detect_bursts(GOOD, 48000, 440.0, min_snr_db=float("inf")),
            ["min_snr_db", "inf"],
        ),
    ],
)
def test_bad_input_names_the_argument(call, words):
    """The message names the argument and the value found."""
    with pytest.raises(dsp.DspError) as caught:
        call()
    message = str(caught.value)
    for word in words:
        assert word in message, message
    assert "\n" not in message


def test_dsp_error_is_a_value_error():
    """Callers may catch it as ValueError too."""
    assert issubclass(dsp.DspError, ValueError)


def test_big_endian_samples_are_accepted():
    """Byte order is not an error: the samples are converted."""
    x = dsp.burst(440.0, 0.3).astype(">i2")
    assert len(dsp.detect_bursts(np.concatenate([np.zeros(2000, ">i2"), x]), 48000, 440.0)) == 1
