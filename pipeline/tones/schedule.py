"""The burst schedule of a tone conversation and the script each speaker says from it.

Both speakers' streams start at one shared instant (`pipeline.script`). A conversation is a run
of periods: in `turns` mode the Customer speaks one burst at the start of each period and the
Support speaker answers half a period later; in `duplex` mode both speak at the start of each
period. Every burst has an id per sender (0, 1, 2...) and a start sample, so verify can tell a
lost, late or repeated burst from a detected one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from echoproof.contract import ROLES, SAMPLE_RATE, SUPPORT
from pipeline.script import Int16Array, Script

# Silence before the first burst: the receivers' jitter buffers settle meanwhile.
LEAD_IN_S = 0.5
# Silence after the last burst, so that it arrives before the senders stop.
TAIL_S = 0.3


@dataclass(frozen=True)
class Burst:
    """One scheduled utterance: id per sender, tone, first sample and length in samples."""

    id: int
    freq_hz: float
    start_sample: int
    samples: int

    @property
    def end_sample(self) -> int:
        """One past the burst's last sample."""
        return self.start_sample + self.samples


def schedule(
    role: str,
    *,
    mode: str,
    tone_hz: float,
    duration_s: float,
    burst_samples: int,
    period_s: float,
) -> list[Burst]:
    """Every burst `role` ("customer" or "support") sends in a conversation of `duration_s` seconds.

    `burst_samples` is the length of the burst waveform (`len(dsp.burst(...))`).
    """
    if role not in ROLES:
        raise ValueError(f"role is {role!r}; expected 'customer' or 'support'")
    offset_s = period_s / 2 if (role == SUPPORT and mode == "turns") else 0.0
    samples = burst_samples
    last_end = round((duration_s - TAIL_S) * SAMPLE_RATE)
    bursts: list[Burst] = []
    k = 0
    while True:
        start = round((LEAD_IN_S + k * period_s + offset_s) * SAMPLE_RATE)
        if start + samples > last_end:
            return bursts
        bursts.append(Burst(len(bursts), tone_hz, start, samples))
        k += 1


def burst_script(
    bursts: list[Burst], waveform: Int16Array, probe: Script[Any] | None = None
) -> Script[Burst]:
    """One sender's stream: `waveform` at every burst, and `probe`, when given, between them
    (`pipeline.tones.probe`)."""
    if any(b.samples != len(waveform) for b in bursts):
        raise ValueError("every burst must be as long as the waveform")
    return Script(bursts, lambda burst: waveform, probe)
