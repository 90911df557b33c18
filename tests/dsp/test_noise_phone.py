"""Background noise at a set SNR, and the narrow-band phone line (`dsp.noise`, `dsp.phone`)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from dsp import noise, phone
from dsp.speech import artificial_voice

RATE = 48_000


def _speech(seconds: float = 2.0) -> tuple[np.ndarray, tuple[int, int]]:
    """Speech-like audio with 0.3 s of silence either side, and the speech's bounds."""
    pad = np.zeros(round(0.3 * RATE))
    voice = artificial_voice(3, seconds, RATE)
    return np.concatenate([pad, voice, pad]), (pad.size, pad.size + voice.size)


@pytest.mark.parametrize("kind", noise.KINDS)
@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 10.0, 30.0])
def test_noise_is_mixed_at_the_snr_asked_for(kind: str, snr_db: float) -> None:
    """The speech's power over the noise added, measured back, is the SNR within 0.5 dB."""
    speech, bounds = _speech()
    background = noise.make(kind, speech.size, RATE, seed=4)
    mixed = noise.mix_at_snr(speech, background, snr_db, bounds, RATE)
    measured = noise.snr_db(speech, mixed - speech, bounds)
    assert measured == pytest.approx(snr_db, abs=0.5)


@pytest.mark.parametrize("kind", noise.KINDS)
def test_noise_is_the_same_for_a_seed_and_differs_between_seeds(kind: str) -> None:
    """Deterministic: one seed, one noise; another seed, another; unit RMS."""
    a, b = noise.make(kind, 24_000, RATE, 1), noise.make(kind, 24_000, RATE, 1)
    c = noise.make(kind, 24_000, RATE, 2)
    assert np.array_equal(a, b) and not np.allclose(a, c)
    assert float(np.sqrt(np.mean(a**2))) == pytest.approx(1.0)


def test_pink_noise_loses_3_db_per_octave() -> None:
    """Pink: the power in 1-2 kHz is about 3 dB below that in 500 Hz-1 kHz (equal power per
    octave means half the power density an octave up)."""
    x = noise.pink(RATE * 4, seed=9)
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(x.size, 1 / RATE)

    def density(lo: float, hi: float) -> float:
        band = (freqs >= lo) & (freqs < hi)
        return float(spectrum[band].mean())

    assert 10 * np.log10(density(500, 1000) / density(1000, 2000)) == pytest.approx(3.0, abs=0.3)


def _quiet_share(x: np.ndarray) -> float:
    """The share of 10 ms blocks 20 dB below the signal's RMS."""
    x = x / np.sqrt(np.mean(x**2))
    blocks = x[: x.size // 480 * 480].reshape(-1, 480)
    return float(np.mean(10 * np.log10(np.mean(blocks**2, axis=1) + 1e-12) < -20))


def test_babble_is_several_voices() -> None:
    """Babble: six voices at once are quiet far less often than one (which pauses between
    syllables): measured 9 % of 10 ms blocks against 31 %."""
    babble = _quiet_share(noise.babble(RATE * 3, RATE, seed=0))
    one = _quiet_share(artificial_voice(0, 3.0, RATE))
    assert babble < one / 2


def test_ulaw_decodes_as_g711_and_encodes_every_sample_as_audioop_did() -> None:
    """Our mu-law against CPython's audioop (3.11-3.12): every 16-bit sample, every code."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")
    every = np.arange(-32768, 32768, dtype=np.int16)
    expected = np.frombuffer(audioop.lin2ulaw(every.tobytes(), 2), dtype=np.uint8)
    assert np.array_equal(phone.ulaw_encode(every), expected)
    codes = np.arange(256, dtype=np.uint8)
    decoded = np.frombuffer(audioop.ulaw2lin(codes.tobytes(), 2), dtype=np.int16)
    assert np.array_equal(phone.ulaw_decode(codes), decoded)


def test_ulaw_round_trip_keeps_speech_within_its_quantisation() -> None:
    """Known codes (silence 0xFF, full scale 0x80 / 0x00), and a round trip about 38 dB clean."""
    assert phone.ulaw_encode(np.array([0, 32767, -32768], np.int16)).tolist() == [0xFF, 0x80, 0x00]
    x = np.round(artificial_voice(5, 1.0, 8000) * 32767 * 0.5).astype(np.int16)
    y = phone.ulaw_decode(phone.ulaw_encode(x)).astype(np.float64)
    error = y - x
    snr = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean(error**2))
    assert 30 < snr < 45


def test_the_phone_path_is_band_limited_to_4_khz_without_delay() -> None:
    """White noise through the line keeps next to nothing above 4 kHz (the filter's edge: -30
    dB from 4.2 kHz, -50 dB from 4.5 kHz; measured -37.7 and -57.6); a 1 kHz tone passes at its
    level (0.5 dB) and in place (no delay)."""
    rng = np.random.default_rng(0)
    white = 0.1 * rng.standard_normal(RATE * 2)
    out = phone.phone_path(white, RATE)
    assert out.size == white.size
    spectrum = np.abs(np.fft.rfft(out)) ** 2
    freqs = np.fft.rfftfreq(out.size, 1 / RATE)
    inside = spectrum[(freqs > 300) & (freqs < 3400)].mean()
    assert 10 * np.log10(spectrum[freqs > 4200].mean() / inside) < -30
    assert 10 * np.log10(spectrum[freqs > 4500].mean() / inside) < -50
    t = np.arange(RATE) / RATE
    tone = 0.3 * np.sin(2 * np.pi * 1000 * t)
    heard = phone.phone_path(tone, RATE)
    middle = slice(RATE // 4, 3 * RATE // 4)
    gain_db = 10 * np.log10(np.mean(heard[middle] ** 2) / np.mean(tone[middle] ** 2))
    assert gain_db == pytest.approx(0.0, abs=0.5)
    lags = np.arange(-20, 21)
    match = [float(np.dot(heard[middle], np.roll(tone, lag)[middle])) for lag in lags]
    assert lags[int(np.argmax(match))] == 0
