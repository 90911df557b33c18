"""The burst schedule and the audio each agent sends."""

from __future__ import annotations

import numpy as np
import pytest

import dsp
from echoproof.contract import FRAME_SAMPLES, SAMPLE_RATE
from pipeline.tones.schedule import LEAD_IN_S, burst_script, schedule


def _plan(role: str, mode: str, duration_s: float = 10.0) -> list:
    return schedule(
        role, mode=mode, tone_hz=440.0, duration_s=duration_s, burst_samples=14401, period_s=1.0
    )


def test_turns_support_answers_half_a_period_later() -> None:
    """In turns mode the Support agent's burst k starts half a period after the Customer's."""
    customer, support = _plan("customer", "turns"), _plan("support", "turns")
    assert [b.id for b in customer] == list(range(len(customer)))
    assert customer[0].start_sample == LEAD_IN_S * SAMPLE_RATE
    for c, s in zip(customer, support, strict=False):
        assert s.start_sample - c.start_sample == SAMPLE_RATE // 2
        assert c.end_sample < s.start_sample  # they take turns: never at once
    assert 8 <= len(support) <= len(customer) <= 10
    last_sample = 10 * SAMPLE_RATE
    assert all(b.end_sample <= last_sample for b in customer + support)


def test_duplex_both_speak_at_once() -> None:
    """In duplex mode both agents start every burst on the same sample."""
    customer, support = _plan("customer", "duplex"), _plan("support", "duplex")
    assert [b.start_sample for b in customer] == [b.start_sample for b in support]


def test_unknown_role_is_refused() -> None:
    """Only customer and support have a schedule."""
    with pytest.raises(ValueError, match="expected 'customer' or 'support'"):
        _plan("caller", "turns")


def test_script_renders_each_burst_at_its_sample() -> None:
    """Frames concatenated are silence with the dsp waveform exactly at every scheduled burst."""
    wave = dsp.burst(440.0, 0.3, SAMPLE_RATE)
    bursts = schedule(
        "support",
        mode="turns",
        tone_hz=440.0,
        duration_s=4.0,
        burst_samples=len(wave),
        period_s=1.0,
    )
    script = burst_script(bursts, wave)
    n_frames = 4 * SAMPLE_RATE // FRAME_SAMPLES
    reported = []
    stream = []
    for n in range(n_frames):
        stream.append(script.frame(n))
        done = script.finished(n + 1)
        for b in done:
            assert b.end_sample <= (n + 1) * FRAME_SAMPLES  # only once wholly sent
            assert b.end_sample > n * FRAME_SAMPLES  # and at once
        reported += done
    audio = np.concatenate(stream)
    expected = np.zeros_like(audio)
    for b in bursts:
        expected[b.start_sample : b.end_sample] = wave
    np.testing.assert_array_equal(audio, expected)
    assert reported == bursts
    assert script.finished(n_frames) == []


def test_script_needs_matching_waveform() -> None:
    """A schedule whose bursts do not match the waveform's length is refused."""
    with pytest.raises(ValueError, match="as long as the waveform"):
        burst_script(_plan("customer", "turns"), np.zeros(10, dtype=np.int16))
