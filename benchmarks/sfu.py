"""The embedded server under load: mouth-to-ear latency through it and its CPU cost.

The server runs as a subprocess (``python -m echoproof.sfu --port 0``); two SDK participants in this
process (Customer 440 Hz, Support 550 Hz) send tone bursts at the same time, each fed 10 ms frames
in real time into ``rtc.AudioSource(48000, 1, queue_size_ms=0)``, for 30 s (quick: 8 s).

Latency per detected burst (``dsp.detect_bursts``, fractional onset): the received onset's time
minus the sent onset's time, both on this process's monotonic clock. Sent time: the moment the
frame holding the onset was handed to ``capture_frame`` plus the onset's offset in it. Received
time: sample index mapped to time by the lower envelope of the frames' arrival times over
+-0.5 s (nominal 48 kHz slope), so event-loop lateness in yielding frames is not counted as
network delay. CPU: utime+stime of the server process from /proc/<pid>/stat over the exchange,
per minute of forwarded audio (two streams).

Validation: the same exchange against a server started with ``--delay-ms 100``; the median
must move by about 100 ms.

``python -m benchmarks.sfu [--quick]``
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass, field

import numpy as np
from livekit import api, rtc

import dsp
from benchmarks._server import cpu_seconds, sfu_process
from echoproof.aiotasks import cancel_and_wait

RATE = 48000
FRAME = 480
API_KEY = "devkey"
API_SECRET = "echoproof-benchmark-secret-0123456789"
BURST_S = 0.2
PERIOD_S = 0.5
WINDOW_FRAMES = 50  # +-0.5 s of arrivals for the time mapping
MATCH_WINDOW_S = 0.4  # a burst heard later than this after it was sent is not matched


@dataclass
class Side:
    """One participant: what it sent (frame times, burst starts) and what it heard."""

    identity: str
    freq_hz: float
    room: rtc.Room = field(default_factory=rtc.Room)
    send_ns: list[int] = field(default_factory=list)
    burst_starts: list[int] = field(default_factory=list)
    heard: list[np.ndarray] = field(default_factory=list)
    heard_ns: list[int] = field(default_factory=list)


def _token(identity: str) -> str:
    grants = api.VideoGrants(room_join=True, room="bench")
    return api.AccessToken(API_KEY, API_SECRET).with_identity(identity).with_grants(grants).to_jwt()


async def _send(side: Side, source: rtc.AudioSource, duration_s: float, offset_s: float) -> None:
    total = int(duration_s * RATE / FRAME) * FRAME
    signal = np.zeros(total, dtype=np.int16)
    burst = dsp.burst(side.freq_hz, BURST_S, RATE)
    start = int(offset_s * RATE)
    while start + len(burst) < total - RATE // 2:
        signal[start : start + len(burst)] = burst
        side.burst_starts.append(start)
        start += int(PERIOD_S * RATE)
    t0 = time.monotonic()
    for i in range(total // FRAME):
        frame = rtc.AudioFrame(signal[i * FRAME : (i + 1) * FRAME].tobytes(), RATE, 1, FRAME)
        side.send_ns.append(time.monotonic_ns())
        await source.capture_frame(frame)
        await asyncio.sleep(max(0.0, t0 + (i + 1) * FRAME / RATE - time.monotonic()))


async def _watch_loop(stalls_ms: list[float]) -> None:
    """Record event-loop stalls over 20 ms in this process: they explain noisy figures."""
    while True:
        start = time.monotonic()
        await asyncio.sleep(0.005)
        late_ms = (time.monotonic() - start - 0.005) * 1000
        if late_ms > 20:
            stalls_ms.append(late_ms)


async def _hear(side: Side, track: rtc.Track) -> None:
    stream = rtc.AudioStream(track, sample_rate=RATE, num_channels=1)
    try:
        async for event in stream:
            side.heard_ns.append(time.monotonic_ns())
            side.heard.append(np.frombuffer(event.frame.data, dtype=np.int16).copy())
    finally:
        await stream.aclose()


def _latencies(sender: Side, receiver: Side) -> tuple[list[float], int]:
    """Mouth-to-ear latencies in ms of the sender's bursts heard by the receiver; lost count."""
    samples = np.concatenate(receiver.heard)
    arrivals = np.array(receiver.heard_ns, dtype=np.float64) / 1e9
    frame_start = np.arange(len(arrivals)) * FRAME / RATE
    sent_at = [sender.send_ns[s // FRAME] / 1e9 + (s % FRAME) / RATE for s in sender.burst_starts]
    heard_at = []
    for burst in dsp.detect_bursts(samples, RATE, sender.freq_hz, duration_s=BURST_S):
        k = int(burst.onset // FRAME)
        lo, hi = max(0, k - WINDOW_FRAMES), min(len(arrivals), k + WINDOW_FRAMES + 1)
        origin = float(np.min(arrivals[lo:hi] - frame_start[lo:hi]))
        heard_at.append(origin + burst.onset / RATE)
    latencies = []
    unmatched = 0
    for t_sent in sent_at:
        delays = [t - t_sent for t in heard_at if 0 <= t - t_sent < MATCH_WINDOW_S]
        if delays:
            latencies.append(min(delays) * 1000)
        else:
            unmatched += 1
    return latencies, unmatched


async def _packets_lost(room: rtc.Room) -> tuple[int, int]:
    """Packets lost and audible concealed samples (silent ones are DTX comfort, not loss)."""
    stats = await room.get_rtc_stats()
    lost = concealed = 0
    for s in stats.subscriber_stats:
        if s.WhichOneof("stats") == "inbound_rtp":
            lost += s.inbound_rtp.received.packets_lost
            inbound = s.inbound_rtp.inbound
            concealed += inbound.concealed_samples - inbound.silent_concealed_samples
    return lost, concealed


async def _exchange(duration_s: float, delay_ms: float = 0.0) -> dict[str, object]:
    customer, support = Side("customer", 440.0), Side("support", 550.0)
    sides = [(customer, support), (support, customer)]
    async with sfu_process("--api-secret", API_SECRET, "--delay-ms", str(delay_ms)) as (url, pid):
        tasks: list[asyncio.Task[None]] = []
        sources: list[rtc.AudioSource] = []
        try:
            subscribed = {customer.identity: asyncio.Event(), support.identity: asyncio.Event()}
            for me, _ in sides:

                def on_track(track: rtc.Track, pub: object, who: rtc.RemoteParticipant,
                             me: Side = me) -> None:  # fmt: skip
                    tasks.append(asyncio.create_task(_hear(me, track), name=f"hear {me}"))
                    subscribed[me.identity].set()

                me.room.on("track_subscribed", on_track)
                await me.room.connect(url, _token(me.identity))
            for me, _ in sides:
                source = rtc.AudioSource(RATE, 1, queue_size_ms=0)
                sources.append(source)
                track = rtc.LocalAudioTrack.create_audio_track("mic", source)
                options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
                await me.room.local_participant.publish_track(track, options)
            async with asyncio.timeout(20):
                for event in subscribed.values():
                    await event.wait()
            await asyncio.sleep(1.0)  # let the jitter buffers settle before measuring
            before = [await _packets_lost(me.room) for me, _ in sides]
            cpu_before, wall_before = cpu_seconds(pid), time.monotonic()
            stalls_ms: list[float] = []
            tasks.append(asyncio.create_task(_watch_loop(stalls_ms), name="loop watch"))
            await asyncio.gather(
                _send(customer, sources[0], duration_s, 0.3),
                _send(support, sources[1], duration_s, 0.3 + PERIOD_S / 2),
            )
            await asyncio.sleep(0.5)  # the last bursts still in flight
            cpu = cpu_seconds(pid) - cpu_before
            wall = time.monotonic() - wall_before
            after = [await _packets_lost(me.room) for me, _ in sides]
            # Over the exchange only: NetEq conceals while waiting for the first packets.
            lost = [(a[0] - b[0], a[1] - b[1]) for a, b in zip(after, before, strict=True)]
        finally:
            await cancel_and_wait(*tasks)
            for me, _ in sides:
                await me.room.disconnect()
            for source in sources:
                await source.aclose()

    latencies: list[float] = []
    sent = unmatched = 0
    for me, other in sides:
        lat, missing = _latencies(me, other)
        latencies += lat
        unmatched += missing
        sent += len(me.burst_starts)
    arr = np.array(latencies) if latencies else np.array([np.nan])
    forwarded_min = 2 * wall / 60
    return {
        "duration_s": duration_s,
        "bursts_sent": sent,
        "bursts_detected": len(latencies),
        "bursts_lost": unmatched,
        "latency_ms": {
            "median": round(float(np.median(arr)), 1),
            "p95": round(float(np.percentile(arr, 95)), 1),
            "p99": round(float(np.percentile(arr, 99)), 1),
            "min": round(float(np.min(arr)), 1),
        },
        "packets_lost": sum(x[0] for x in lost),
        "audible_concealed_samples": sum(x[1] for x in lost),
        "server_cpu_s_per_audio_min": round(cpu / forwarded_min, 2),
        "client_loop_stalls_over_20ms": len(stalls_ms),
        "client_loop_stall_max_ms": round(max(stalls_ms, default=0.0), 1),
        "latency_method": "dsp.detect_bursts onsets; arrival time by lower envelope over +-0.5 s",
    }


INJECTED_DELAY_MS = 100.0


def run(quick: bool = False) -> dict[str, object]:
    """Run the exchange (30 s, quick 8 s), then again with the server delaying every stream
    by 100 ms to check that the latency figure moves one for one; print a table."""
    duration = 8.0 if quick else 30.0
    figures = asyncio.run(_exchange(duration))
    delayed = asyncio.run(_exchange(duration, INJECTED_DELAY_MS))
    latency = figures["latency_ms"]
    delayed_latency = delayed["latency_ms"]
    assert isinstance(latency, dict) and isinstance(delayed_latency, dict)
    shift = round(delayed_latency["median"] - latency["median"], 1)
    figures["validation"] = {
        "injected_delay_ms": INJECTED_DELAY_MS,
        "median_with_delay_ms": delayed_latency["median"],
        "measured_shift_ms": shift,
    }
    rows = [
        ("mouth-to-ear median", f"{latency['median']} ms", "<= 60 ms"),
        ("mouth-to-ear p95", f"{latency['p95']} ms", ""),
        ("mouth-to-ear p99", f"{latency['p99']} ms", "<= 100 ms"),
        ("bursts lost", f"{figures['bursts_lost']} of {figures['bursts_sent']}", "0"),
        ("packets lost (SDK stats)", str(figures["packets_lost"]), "0"),
        ("audible concealed samples (SDK)", str(figures["audible_concealed_samples"]), ""),
        ("server CPU s / audio min", str(figures["server_cpu_s_per_audio_min"]), ""),
        ("shift for 100 ms injected delay", f"{shift} ms", "~100 ms"),
        (
            "client loop stalls > 20 ms (max)",
            f"{figures['client_loop_stalls_over_20ms']} ({figures['client_loop_stall_max_ms']} ms)",
            "noise",
        ),
    ]
    for name, value, goal in rows:
        print(f"{name:32} {value:>16}   {goal}")
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sfu", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="8 s instead of 30 s")
    run(quick=parser.parse_args().quick)
