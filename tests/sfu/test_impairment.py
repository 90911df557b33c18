"""Impairment of forwarded streams: the schedule alone, the held packets, and end to end."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

import sfu
from sfu.impairment import Impairment, ImpairmentError, Schedule
from sfu.media import ForwardTrack
from tests.conftest import scaled
from tests.sfu._clients import API_KEY, API_SECRET, Listener, ToneSender, joined


def test_fixed_delay_is_added_to_every_packet() -> None:
    """delay_ms only: each packet is released exactly that much after it arrived."""
    s = Schedule(Impairment(delay_ms=80))
    assert [s.admit(t) for t in (0.0, 0.02, 0.04)] == pytest.approx([0.08, 0.1, 0.12])


def test_jitter_stays_in_bounds_and_never_reorders() -> None:
    """Jitter adds 0..jitter_ms; release times never go backwards."""
    s = Schedule(Impairment(delay_ms=20, jitter_ms=30, seed=3))
    arrivals = [i * 0.02 for i in range(2000)]
    releases = [s.admit(t) or -1.0 for t in arrivals]
    held = [r - t for r, t in zip(releases, arrivals, strict=True)]
    assert min(held) >= 0.02 - 1e-9  # also: nothing was dropped (-1.0)
    assert max(held) < 0.05 + 0.02  # jitter bound, plus what order-keeping may add
    assert all(b >= a for a, b in itertools.pairwise(releases))


def test_seeded_loss_is_reproducible_and_close_to_the_share() -> None:
    """The same seed drops the same packets; the share dropped is near ``loss``."""

    def pattern(seed: int) -> list[bool]:
        s = Schedule(Impairment(loss=0.1, seed=seed))
        return [s.admit(i * 0.02) is None for i in range(5000)]

    assert pattern(7) == pattern(7)
    assert pattern(7) != pattern(8)
    assert 0.08 < sum(pattern(7)) / 5000 < 0.12


def test_outage_drops_exactly_its_window() -> None:
    """Packets arriving within an outage window (after the first packet) are all dropped."""
    s = Schedule(Impairment(outages=((1.0, 0.5),)))
    dropped = [t for t in (i * 0.1 for i in range(30)) if s.admit(100 + t) is None]
    assert dropped == pytest.approx([1.0, 1.1, 1.2, 1.3, 1.4])
    assert s.dropped == 5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"delay_ms": -1}, "delay_ms is -1"),
        ({"jitter_ms": float("nan")}, "jitter_ms is nan"),
        ({"loss": 1.5}, "loss is 1.5"),
        ({"outages": ((0.0, 0.0),)}, "duration_s > 0"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, object], message: str) -> None:
    """Out-of-range settings raise ImpairmentError naming the value and the range."""
    with pytest.raises(ImpairmentError, match=message):
        Impairment(**kwargs)  # type: ignore[arg-type]


async def test_forward_track_holds_packets_until_release() -> None:
    """A delayed ForwardTrack hands out nothing before the delay has passed, in order."""
    track = ForwardTrack("TR_d", schedule=Schedule(Impairment(delay_ms=150)))
    first = asyncio.create_task(track.recv())
    await asyncio.sleep(0)
    start = time.monotonic()
    track.push(b"a", 0)
    track.push(b"b", 960)
    packet = await first
    assert time.monotonic() - start >= 0.15 - 0.005
    assert bytes(packet) == b"a"
    assert bytes(await track.recv()) == b"b"


async def test_impairment_applies_per_stream_end_to_end() -> None:
    """A policy drops everything to one listener and delays another; a third is untouched."""

    def policy(publisher: str, subscriber: str) -> Impairment | None:
        return {
            "deaf": Impairment(loss=1.0),
            "late": Impairment(delay_ms=500),
        }.get(subscriber)

    async with (
        sfu.serve(port=0, api_key=API_KEY, api_secret=API_SECRET, impairment=policy) as server,
        joined(server.url, "deaf", "imp") as deaf,
        joined(server.url, "late", "imp") as late,
        joined(server.url, "clear", "imp") as clear,
        Listener(deaf, "talker") as deaf_hears,
        Listener(late, "talker") as late_hears,
        Listener(clear, "talker") as clear_hears,
        joined(server.url, "talker", "imp") as talker,
        ToneSender(talker, 440.0),
    ):
        await clear_hears.wait_frames(250, 15)
        await late_hears.wait_frames(200, 15)
        clear_first = clear_hears.first_tone_frame(440.0)
        late_first = late_hears.first_tone_frame(440.0)
        assert clear_first is not None and late_first is not None
        # Same start (both subscribed at once): the late one's tone starts ~50 frames later.
        assert late_first - clear_first >= 30
        async with asyncio.timeout(scaled(5)):
            await deaf_hears.subscribed.wait()
        assert deaf_hears.first_tone_frame(440.0) is None
