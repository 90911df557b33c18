"""Impairment of forwarded streams: the schedule alone, the held packets, and end to end."""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field

import numpy as np
import pytest
from livekit import rtc

import dsp
from echoproof import sfu
from echoproof.aiotasks import cancel_and_wait
from echoproof.sfu import __main__ as sfu_cli
from echoproof.sfu.impairment import Impairment, ImpairmentError, Schedule
from echoproof.sfu.media import ForwardTrack
from tests.conftest import scaled
from tests.echoproof.sfu._clients import (
    API_KEY,
    API_SECRET,
    FRAME,
    RATE,
    Listener,
    ToneSender,
    joined,
    until,
)


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
    """The same seed drops the same packets; the share dropped is near ``loss_pct``."""

    def pattern(seed: int) -> list[bool]:
        s = Schedule(Impairment(loss_pct=10, seed=seed))
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
        ({"loss_pct": 100.5}, "loss is 100.5 %"),
        ({"loss_pct": -1}, "between 0 and 100"),
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


def test_command_line_sets_the_impairment_in_percent() -> None:
    """``--delay-ms 100 --jitter-ms 20 --loss 5 --seed 1 --outage 10:2``, loss in percent."""
    command = "--delay-ms 100 --jitter-ms 20 --loss 5 --seed 1 --outage 10:2"
    args = sfu_cli.parser().parse_args(command.split())
    assert sfu_cli.impairment_of(args) == Impairment(
        delay_ms=100, jitter_ms=20, loss_pct=5, seed=1, outages=((10.0, 2.0),)
    )
    assert sfu_cli.impairment_of(sfu_cli.parser().parse_args([])) is None


def test_impair_to_limits_the_impairment_to_matching_subscribers() -> None:
    """``--impair-to support-agent`` impairs streams to support-agent-* only."""
    args = sfu_cli.parser().parse_args(["--delay-ms", "100", "--impair-to", "support-agent"])
    policy = sfu_cli.impairment_of(args)
    assert callable(policy)
    assert policy("customer-1", "support-agent-1") == Impairment(delay_ms=100)
    assert policy("support-agent-1", "customer-1") is None


async def test_held_packets_block_neither_the_loop_nor_other_streams() -> None:
    """While one copy holds packets for 300 ms, another gets them at once and the loop runs."""
    held = ForwardTrack("TR_h", schedule=Schedule(Impairment(delay_ms=300)))
    clear = ForwardTrack("TR_c")
    waiting = [asyncio.create_task(t.recv()) for t in (held, clear)]
    await asyncio.sleep(0)
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.005)

    tick = asyncio.create_task(ticker())
    try:
        start = time.monotonic()
        for t in (held, clear):
            t.push(b"x", 0)
        await waiting[1]
        assert time.monotonic() - start < 0.05
        assert not waiting[0].done()
        await waiting[0]
        assert time.monotonic() - start >= 0.3 - 0.005
    finally:
        await cancel_and_wait(tick)
    # The loop ran all along: ~60 ticks in 300 ms, no stall longer than a busy machine's.
    assert len(ticks) >= 20
    assert max(np.diff(ticks)) < scaled(0.1)


async def test_dropped_packets_count_as_lost_at_the_receiver() -> None:
    """With 20% loss the subscriber's RTP statistics show ~20% packets lost, RED on."""
    async with (
        sfu.serve(
            port=0, api_key=API_KEY, api_secret=API_SECRET, impairment=Impairment(loss_pct=20)
        ) as server,
        joined(server.url, "lossy", "loss") as lossy,
        TimedListener(lossy, "talker") as hears,
        joined(server.url, "talker", "loss") as talker,
        ToneSender(talker, 440.0),
    ):
        await until(lambda: len(hears.frames) >= 200, 15)
        assert hears.track is not None
        stats = [s for s in await hears.track.get_stats() if s.WhichOneof("stats") == "inbound_rtp"]
        received = stats[0].inbound_rtp.received
        # The SDK publishes RED and takes it: the gaps are counted with RED on too.
        connection = server.connection("loss", "lossy")
        assert connection is not None
        ((_, sink),) = connection.subscriptions.values()
        assert sink.red_out
    total = received.packets_received + received.packets_lost
    assert total >= 80
    # 20% of >= 80 packets: the binomial 99.9% interval is well inside 8%..32%.
    assert 0.08 < received.packets_lost / total < 0.32


async def test_impairment_applies_per_stream_end_to_end() -> None:
    """A policy drops everything to one listener and delays another; a third is untouched."""

    def policy(publisher: str, subscriber: str) -> Impairment | None:
        return {
            "deaf": Impairment(loss_pct=100),
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


class BurstSender:
    """Publishes 150 ms tone bursts (``dsp.burst``) every 400 ms, paced by the SDK's queue."""

    def __init__(self, room: rtc.Room, freq_hz: float) -> None:
        self.room = room
        period = np.zeros(int(0.4 * RATE), dtype=np.int16)
        shape = dsp.burst(freq_hz, 0.15, RATE, amplitude=0.5)
        period[: shape.size] = shape
        self.period = period
        self.source = rtc.AudioSource(RATE, 1, queue_size_ms=200)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> BurstSender:
        track = rtc.LocalAudioTrack.create_audio_track("bursts", self.source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        await self.room.local_participant.publish_track(track, options)
        self._task = asyncio.create_task(self._feed(), name="bursts")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await cancel_and_wait(self._task)
        await self.source.aclose()

    async def _feed(self) -> None:
        for i in itertools.count():
            start = (i * FRAME) % self.period.size
            chunk = self.period[start : start + FRAME]
            await self.source.capture_frame(rtc.AudioFrame(chunk.tobytes(), RATE, 1, FRAME))


@dataclass
class TimedListener(Listener):
    """A Listener that also polls, every 100 ms, the receiver's cumulative jitter-buffer delay
    and samples emitted."""

    buffer: list[tuple[float, float, int]] = field(default_factory=list)  # (time, s, samples)

    def _on_track(
        self, track: rtc.Track, pub: rtc.RemoteTrackPublication, who: rtc.RemoteParticipant
    ) -> None:
        reading = len(self._tasks)
        super()._on_track(track, pub, who)
        if len(self._tasks) > reading:  # it started reading this track: poll its statistics too
            self._tasks.append(asyncio.create_task(self._poll(track), name=f"stats {who}"))

    async def _poll(self, track: rtc.Track) -> None:
        while True:
            for stat in await track.get_stats():
                if stat.WhichOneof("stats") == "inbound_rtp":
                    inbound = stat.inbound_rtp.inbound
                    now = time.monotonic()
                    self.buffer.append(
                        (now, inbound.jitter_buffer_delay, inbound.jitter_buffer_emitted_count)
                    )
            await asyncio.sleep(0.1)

    def buffer_ms(self, at: float) -> float:
        """The mean jitter-buffer delay of the audio played in the 100 ms poll around ``at``."""
        b = np.array(self.buffer)
        i = int(np.clip(np.searchsorted(b[:, 0], at), 1, len(b) - 1))
        emitted = b[i, 2] - b[i - 1, 2]
        if emitted <= 0:  # nothing played in that poll: the one before
            i = max(1, i - 1)
            emitted = b[i, 2] - b[i - 1, 2]
        return float(1000 * (b[i, 1] - b[i - 1, 1]) / max(emitted, 1))

    def onset_times(self, freq_hz: float, from_frame: int = 0) -> np.ndarray:
        """Monotonic time of each burst onset heard.

        Frames come at a steady 48 kHz but reach Python with event-loop jitter (which only ever
        delays them), and the receiver's jitter buffer may stretch or squeeze the audio; so each
        onset's time comes from the earliest-arriving frames of the half second around it.
        """
        samples = np.concatenate(self.frames)
        lag = np.array(self.times) - np.arange(len(self.frames)) * FRAME / RATE
        out = []
        for b in dsp.detect_bursts(samples, RATE, freq_hz, duration_s=0.15):
            j = int(b.onset) // FRAME
            if j < from_frame:
                continue
            out.append(float(np.percentile(lag[max(0, j - 25) : j + 25], 10)) + b.onset / RATE)
        return np.array(out)


async def test_injected_delay_shifts_burst_latency_one_for_one() -> None:
    """100 ms injected on one listener's copy moves each burst's arrival by 100 ms (±15 ms).

    Two listeners hear the same talker, one through the delay: each burst is a matched pair.
    Their jitter buffers settle at levels up to ~40 ms apart (NetEq adapts per stream), so each
    pair's shift is taken net of the difference of their jitter-buffer delay at that moment.
    """

    def policy(publisher: str, subscriber: str) -> Impairment | None:
        return Impairment(delay_ms=100) if subscriber == "late" else None

    async with (
        sfu.serve(port=0, api_key=API_KEY, api_secret=API_SECRET, impairment=policy) as server,
        joined(server.url, "late", "delay") as late,
        joined(server.url, "clear", "delay") as clear,
        TimedListener(late, "talker") as late_hears,
        TimedListener(clear, "talker") as clear_hears,
        joined(server.url, "talker", "delay") as talker,
        BurstSender(talker, 440.0),
    ):
        listeners = (late_hears, clear_hears)
        await until(lambda: all(len(h.frames) >= 100 for h in listeners), 15)
        first = [len(h.frames) for h in listeners]
        await until(lambda: len(late_hears.frames) >= first[0] + 400, 15)  # ten bursts
    late_t = late_hears.onset_times(440.0, first[0])
    clear_t = clear_hears.onset_times(440.0, first[1])
    # Each burst the clear listener heard, matched with the same burst heard late (period
    # 400 ms), net of the difference of the two jitter buffers' delay at that moment.
    raw, shifts = [], []
    for t in clear_t:
        k = int(np.argmin(np.abs(late_t - t - 0.1)))
        if abs(late_t[k] - t - 0.1) < 0.15:
            raw.append(1000 * float(late_t[k] - t))
            buffers = late_hears.buffer_ms(late_t[k]) - clear_hears.buffer_ms(t)
            shifts.append(raw[-1] - buffers)
    assert len(shifts) >= 6, f"only {len(shifts)} bursts matched"
    shift_ms = float(np.median(shifts))
    assert shift_ms == pytest.approx(100, abs=15), f"net shifts {shifts} ms, raw {raw} ms"
