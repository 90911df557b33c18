"""detect_bursts on synthetic recordings whose bursts sit at known fractional positions."""

from __future__ import annotations

import numpy as np
import pytest

import dsp

from ._signals import RATE, recording


def _onset_errors(freq, snr_db, trials, seed, duration_hint=None):
    """Onset errors (samples) of one burst per trial at a random fractional position."""
    rng = np.random.default_rng(seed)
    errors = []
    for _ in range(trials):
        start, offset = int(rng.integers(2000, 6000)), float(rng.uniform(0, 1))
        x = recording(RATE // 2, [(freq, start, offset)], snr_db, rng)
        found = dsp.detect_bursts(x, RATE, freq, duration_s=duration_hint)
        assert len(found) == 1, found
        errors.append(found[0].onset - (start + offset))
    return np.array(errors)


@pytest.mark.parametrize("offset", [0.0, 0.01, 0.25, 0.5, 0.77, 0.99])
@pytest.mark.parametrize("freq", [440.0, 550.0])
def test_clean_burst_found_at_its_offset(freq, offset):
    """A clean burst is timed within a few hundredths of a sample; its figures are right."""
    x = recording(RATE, [(freq, 10_000, offset)], None, np.random.default_rng(0))
    (burst,) = dsp.detect_bursts(x, RATE, freq)
    assert burst.onset == pytest.approx(10_000 + offset, abs=0.02)
    assert burst.duration == pytest.approx(0.3 * RATE, abs=0.5)
    assert burst.freq_hz == pytest.approx(freq, abs=0.01)
    assert burst.level_dbfs == pytest.approx(20 * np.log10(0.5 * 32767 / 32768), abs=0.01)
    assert burst.snr_db > 60


def test_float_input_gives_the_same_onset():
    """float64 in [-1, 1] and int16 give the same onset and level."""
    x = recording(RATE, [(440.0, 7000, 0.3)], 20, np.random.default_rng(1))
    (from_int,) = dsp.detect_bursts(x, RATE, 440.0)
    (from_float,) = dsp.detect_bursts(x / 32768.0, RATE, 440.0)
    (from_f32,) = dsp.detect_bursts((x / 32768.0).astype(np.float32), RATE, 440.0)
    assert from_float.onset == pytest.approx(from_int.onset, abs=1e-6)
    assert from_float.level_dbfs == pytest.approx(from_int.level_dbfs, abs=1e-6)
    assert from_f32.onset == pytest.approx(from_int.onset, abs=1e-3)


@pytest.mark.parametrize("freq", [440.0, 550.0])
def test_onset_at_20_db_snr(freq):
    """At 20 dB SNR (white, full band) onsets are within a tenth of a sample."""
    errors = _onset_errors(freq, 20, 100, seed=int(freq))
    assert abs(errors.mean()) < 0.01
    assert errors.std() < 0.03
    assert np.max(np.abs(errors)) < 0.1


@pytest.mark.parametrize("freq", [440.0, 550.0])
def test_onset_at_0_db_snr(freq):
    """At 0 dB SNR: std within 5 us (0.24 samples) and no cycle slip in 100 trials."""
    errors = _onset_errors(freq, 0, 100, seed=7 + int(freq))
    assert errors.std() < 0.24
    assert np.max(np.abs(errors)) < 0.25 * RATE / freq  # a slip would be a whole period


def test_duration_hint_keeps_the_onset():
    """Knowing the nominal duration does not move a clean onset."""
    x = recording(RATE, [(550.0, 9000, 0.6)], None, np.random.default_rng(2))
    (plain,) = dsp.detect_bursts(x, RATE, 550.0)
    (hinted,) = dsp.detect_bursts(x, RATE, 550.0, duration_s=0.3)
    assert hinted.onset == pytest.approx(plain.onset, abs=1e-6)


def test_both_tones_in_turns():
    """Customer and Support bursts in one recording: each tone finds only its own."""
    placements = [
        (440.0, 2_000, 0.1),
        (550.0, 22_000, 0.4),
        (440.0, 42_000, 0.7),
        (550.0, 62_000, 0.9),
    ]
    x = recording(4 * RATE // 2, placements, 20, np.random.default_rng(4))
    for freq in (440.0, 550.0):
        found = dsp.detect_bursts(x, RATE, freq)
        want = [s + o for f, s, o in placements if f == freq]
        assert [b.onset for b in found] == pytest.approx(want, abs=0.1)
        assert all(b.freq_hz == pytest.approx(freq, abs=0.5) for b in found)


@pytest.mark.parametrize("lag_s", [-0.15, -0.01, -0.002, 0.003, 0.02, 0.1])
def test_overlapping_tones_full_duplex(lag_s):
    """Both tones overlapping in time: one burst each, its own frequency, onset within 5 us.

    (The other tone inside our burst's body leaks a little into the phase fit, hence 0.24
    samples rather than the few hundredths of a clean recording.)
    """
    start_550 = 10_000 + int(lag_s * RATE)
    placements = [(440.0, 10_000, 0.2), (550.0, start_550, 0.5)]
    x = recording(RATE, placements, 20, np.random.default_rng(5))
    (customer,) = dsp.detect_bursts(x, RATE, 440.0)
    (support,) = dsp.detect_bursts(x, RATE, 550.0)
    assert customer.freq_hz == pytest.approx(440.0, abs=1.0)
    assert support.freq_hz == pytest.approx(550.0, abs=1.0)
    assert customer.onset == pytest.approx(10_000.2, abs=0.24)
    assert support.onset == pytest.approx(start_550 + 0.5, abs=0.24)


@pytest.mark.parametrize(
    ("ratio", "detected"),
    [(1.01, True), (0.986, True), (1.04, False), (0.962, False), (1.25, False)],
)
def test_frequency_tolerance(ratio, detected):
    """Detected within 1.5 % of the frequency, rejected beyond 3.5 %."""
    x = recording(RATE, [(440.0 * ratio, 8_000, 0.0)], 20, np.random.default_rng(6))
    found = dsp.detect_bursts(x, RATE, 440.0)
    assert bool(found) is detected
    if detected:
        assert found[0].freq_hz == pytest.approx(440.0 * ratio, abs=0.5)


def test_tolerance_is_configurable():
    """A wider tolerance accepts what the default rejects."""
    x = recording(RATE, [(440.0 * 1.04, 8_000, 0.0)], 20, np.random.default_rng(6))
    assert dsp.detect_bursts(x, RATE, 440.0, tolerance=0.05, reject=0.08)


def test_blips_are_ignored():
    """A 20 ms blip of the right tone is not a burst; min_duration_s decides."""
    rng = np.random.default_rng(8)
    x = recording(RATE, [(440.0, 8_000, 0.0)], 20, rng, duration_s=0.02)
    assert dsp.detect_bursts(x, RATE, 440.0) == []
    assert len(dsp.detect_bursts(x, RATE, 440.0, min_duration_s=0.01)) == 1


def test_noise_and_silence_give_nothing():
    """Pure noise, digital silence and the other tone alone are never a burst."""
    rng = np.random.default_rng(9)
    assert dsp.detect_bursts(recording(10 * RATE, [], 0, rng), RATE, 440.0) == []
    assert dsp.detect_bursts(np.zeros(RATE, np.int16), RATE, 440.0) == []
    x = recording(RATE, [(550.0, 1_000, 0.0)], None, rng)
    assert dsp.detect_bursts(x, RATE, 440.0) == []


def test_recording_edges():
    """A burst under way at sample 0 is skipped; one cut by the end is kept, shortened."""
    x = recording(
        RATE, [(440.0, 0, 0.0), (440.0, RATE - 4_000, 0.25)], 30, np.random.default_rng(10)
    )
    (cut,) = dsp.detect_bursts(x[3_000:], RATE, 440.0)
    assert cut.onset == pytest.approx(RATE - 4_000 + 0.25 - 3_000, abs=0.1)
    assert cut.duration == pytest.approx(4_000 - 0.25, abs=1)


def test_short_input_gives_nothing():
    """Less than a block of input: no bursts, no error."""
    assert dsp.detect_bursts(np.zeros(100, np.int16), RATE, 440.0) == []
