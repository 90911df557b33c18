"""The baseline for the agents' overhead: N conversations with the bare SDK and no project code.

``python -m benchmarks._bare_sdk --url WS --api-secret S --pairs N --duration S --marker FILE``

Each pair is two ``rtc.Room``s in their own room; each publishes an ``rtc.AudioSource`` fed 10 ms
frames in real time (the same turn-taking tone bursts as the pipeline's default config: 0.3 s at
440 Hz every second from 0.5 s, 550 Hz from 1.0 s) and reads the other's ``rtc.AudioStream``,
touching every frame. Nothing is written. ``FILE`` is created the moment the audio starts, so the
caller can measure CPU over the audio only. Only the SDK, livekit-api and numpy are imported.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from pathlib import Path

import numpy as np
from livekit import api, rtc

RATE = 48000
FRAME = 480
BURST_S, PERIOD_S, RAMP_S, AMPLITUDE = 0.3, 1.0, 0.005, 0.5


def _signal(freq: float, first_s: float, duration_s: float) -> np.ndarray:
    """int16 samples: a ramped tone burst every PERIOD_S from `first_s`, silence between."""
    total = int(duration_s * RATE) // FRAME * FRAME
    out = np.zeros(total, dtype=np.float64)
    n = int(BURST_S * RATE)
    ramp = np.minimum(1.0, np.minimum(np.arange(n), np.arange(n)[::-1]) / (RAMP_S * RATE))
    burst = AMPLITUDE * 32767 * ramp * np.sin(2 * np.pi * freq * np.arange(n) / RATE)
    start = int(first_s * RATE)
    while start + n <= total:
        out[start : start + n] = burst
        start += int(PERIOD_S * RATE)
    return out.astype(np.int16)


def _token(api_key: str, api_secret: str, identity: str, room: str) -> str:
    grants = api.VideoGrants(room_join=True, room=room)
    token = api.AccessToken(api_key, api_secret).with_identity(identity).with_grants(grants)
    return token.to_jwt()


async def _speak(source: rtc.AudioSource, samples: np.ndarray, t0: float) -> None:
    for i in range(samples.shape[0] // FRAME):
        frame = rtc.AudioFrame(samples[i * FRAME : (i + 1) * FRAME].tobytes(), RATE, 1, FRAME)
        await source.capture_frame(frame)
        await asyncio.sleep(max(0.0, t0 + (i + 1) * FRAME / RATE - time.monotonic()))


async def _listen(track: rtc.Track, counts: list[int]) -> None:
    stream = rtc.AudioStream(track, sample_rate=RATE, num_channels=1)
    try:
        async for event in stream:
            counts[0] += len(event.frame.data)  # touch every frame, as a recorder would
    finally:
        await stream.aclose()


async def main(args: argparse.Namespace) -> None:
    """Join every pair, wait until each hears the other, talk for the duration, leave."""
    rooms: list[rtc.Room] = []
    sources: list[rtc.AudioSource] = []
    listeners: list[asyncio.Task[None]] = []
    heard = [asyncio.Event() for _ in range(2 * args.pairs)]
    counts = [0]
    talked = float("nan")
    try:
        for i in range(2 * args.pairs):
            room = rtc.Room()
            rooms.append(room)

            def on_track(track: rtc.Track, *_: object, i: int = i) -> None:
                listeners.append(asyncio.create_task(_listen(track, counts), name=f"listen {i}"))
                heard[i].set()

            room.on("track_subscribed", on_track)
            token = _token(args.api_key, args.api_secret, f"bare-{i}", f"bare-{i // 2}")
            await room.connect(args.url, token)
            source = rtc.AudioSource(RATE, 1, queue_size_ms=0)
            sources.append(source)
            track = rtc.LocalAudioTrack.create_audio_track("mic", source)
            options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
            await room.local_participant.publish_track(track, options)
        async with asyncio.timeout(60):
            for event in heard:
                await event.wait()
        await asyncio.to_thread(Path(args.marker).touch)
        t0 = time.monotonic()
        async with asyncio.TaskGroup() as group:
            for i, source in enumerate(sources):
                freq, first = (440.0, 0.5) if i % 2 == 0 else (550.0, 1.0)
                group.create_task(_speak(source, _signal(freq, first, args.duration), t0))
        talked = time.monotonic() - t0
        await asyncio.sleep(0.5)  # the last frames still in flight
    finally:
        for task in listeners:
            task.cancel()
        for task in listeners:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for room in rooms:
            await room.disconnect()
        for source in sources:
            await source.aclose()
    print(f"bytes heard: {counts[0]}; {args.duration:g} s of audio sent in {talked:.1f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks._bare_sdk", description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--api-key", default="devkey")
    parser.add_argument("--api-secret", default="secret")
    parser.add_argument("--pairs", type=int, default=1)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--marker", required=True, help="file created when the audio starts")
    asyncio.run(main(parser.parse_args()))
    # The SDK's Rust threads can panic while the interpreter finalises ("panic in a function
    # that cannot unwind", SIGABRT) after everything was closed; the measurement is over by then.
    sys.stdout.flush()
    os._exit(0)
