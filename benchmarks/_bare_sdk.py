"""The physical anchor: N conversations with the bare SDK and no project code.

``python -m benchmarks._bare_sdk --url WS --api-secret S --pairs N --duration S --marker FILE
[--summary JSON] [--agent NAME --window S]``

With ``--agent NAME`` each of the N is a caller instead (``benchmarks.callers``): one
``rtc.Room`` in a room of its own, into which it dispatches the agent registered as NAME
(``AgentDispatchService.CreateDispatch``); once it hears the agent's track it says what the
pipeline's Customer says without ``--say`` (listen ``--window`` seconds, the 440 Hz burst, listen,
and so on, each turn from a 10 ms frame) and records the agent's audio as below. Its summary
counts per caller the turns sent and those answered (an onset heard within the window after the
burst's end).

Each pair is two ``rtc.Room``s in their own room; each publishes an ``rtc.AudioSource`` fed 10 ms
frames in real time (the same turn-taking tone bursts as the pipeline's default config: 0.3 s at
440 Hz every second from 0.5 s, 550 Hz from 1.0 s) and reads the other's ``rtc.AudioStream``.
``FILE`` is created the moment the audio starts, so the caller can measure CPU over the audio only.
Only the SDK, livekit-api and numpy are imported. With ``--fifo`` every thread of the process
runs under SCHED_FIFO at priority 1 while the audio runs, as the pipeline's capture does
(``pipeline.recording.realtime``), so that the baseline is scheduled no worse than what it is
compared
with; done here with the standard library alone.

What the capacity benchmark's criteria need is measured the cheapest way there is: while the
audio runs, each sender keeps the ``time.monotonic_ns()`` at which it handed each frame to
``capture_frame``, each receiver copies every frame's PCM into a preallocated int16 buffer and
keeps its arrival ``time.monotonic_ns()``. Only after the audio is over are the bursts found: an
onset is the first sample whose magnitude exceeds a quarter of the burst amplitude after at least
0.2 s below it, found alike in what was sent and in what was heard, so the detector's own lag
cancels. A burst's send time is the send time of the frame holding its onset plus the onset's
offset in that frame; its arrival time likewise from the received frame. Each sent burst takes
the first unmatched onset heard within one burst period after it was sent, else it is lost.
``JSON`` gets the summary: per direction its bursts' latencies (null for a lost one), and per
pair whether the conversation is complete (both rooms stayed connected and each side heard at
least 95 % of the samples sent to it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from livekit import api, rtc

RATE = 48000
FRAME = 480
BURST_S, PERIOD_S, RAMP_S, AMPLITUDE = 0.3, 1.0, 0.005, 0.5
ONSET_FRACTION = 0.25  # of the burst amplitude
QUIET_S = 0.2  # below the threshold this long before an onset (bursts are 0.7 s apart)
TAIL_S = 1.5  # listening after the last frame is sent: the last burst still in flight
COMPLETE_SHARE = 0.95


def _burst(freq: float) -> np.ndarray:
    """One ramped tone burst (float samples at int16 scale)."""
    n = int(BURST_S * RATE)
    ramp = np.minimum(1.0, np.minimum(np.arange(n), np.arange(n)[::-1]) / (RAMP_S * RATE))
    return AMPLITUDE * 32767 * ramp * np.sin(2 * np.pi * freq * np.arange(n) / RATE)


def _signal(freq: float, first_s: float, duration_s: float) -> np.ndarray:
    """int16 samples: a ramped tone burst every PERIOD_S from `first_s`, silence between."""
    total = int(duration_s * RATE) // FRAME * FRAME
    out = np.zeros(total, dtype=np.float64)
    burst = _burst(freq)
    start = int(first_s * RATE)
    while start + burst.size <= total:
        out[start : start + burst.size] = burst
        start += int(PERIOD_S * RATE)
    return out.astype(np.int16)


def turn_signal(duration_s: float, window_s: float) -> tuple[np.ndarray, list[int]]:
    """A caller's int16 samples, and where each turn ends: listen `window_s`, the 440 Hz burst,
    listen, ... while a turn and its window fit, each turn from a frame boundary."""
    total = int(duration_s * RATE) // FRAME * FRAME
    out = np.zeros(total, dtype=np.float64)
    burst, window = _burst(440.0), round(window_s * RATE)
    ends: list[int] = []
    at = -(-window // FRAME) * FRAME
    while at + burst.size + window <= total:
        out[at : at + burst.size] = burst
        ends.append(at + burst.size)
        at = -(-(at + burst.size + window) // FRAME) * FRAME
    return out.astype(np.int16), ends


def onsets(samples: np.ndarray, threshold: float, quiet: int) -> np.ndarray:
    """Indices of the samples whose magnitude exceeds `threshold` after at least `quiet` samples
    that do not (the recording's start counts as quiet)."""
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > threshold)
    if loud.size == 0:
        return loud
    return loud[np.diff(loud, prepend=-quiet - 1) > quiet]


def sample_times_ns(index: np.ndarray, frame_start: np.ndarray, frame_ns: np.ndarray) -> np.ndarray:
    """The time of each sample in `index`: its frame's time plus its offset in that frame."""
    j = np.searchsorted(frame_start, index, side="right") - 1
    return frame_ns[j] + ((index - frame_start[j]) * 1_000_000_000) // RATE


def match_bursts(sent_ns: np.ndarray, heard_ns: np.ndarray, window_ns: int) -> list[float | None]:
    """Each sent burst's latency in ms: the first onset heard not before it and within
    `window_ns`, each onset used once; None for a burst never heard."""
    latencies: list[float | None] = []
    k = 0
    for sent in sent_ns:
        while k < heard_ns.size and heard_ns[k] < sent:
            k += 1  # heard before this burst left: not its echo (an unexpected detection)
        if k < heard_ns.size and heard_ns[k] - sent < window_ns:
            latencies.append(round(float(heard_ns[k] - sent) / 1e6, 2))
            k += 1
        else:
            latencies.append(None)
    return latencies


class Recorder:
    """What one agent hears, kept in preallocated buffers: PCM and each frame's arrival time."""

    def __init__(self, seconds: float) -> None:
        self.pcm = np.zeros(int(seconds * RATE), dtype=np.int16)
        frames = int(seconds * RATE) // FRAME * 2 + 16  # room for frames shorter than 10 ms
        self.frame_start = np.zeros(frames, dtype=np.int64)
        self.frame_ns = np.zeros(frames, dtype=np.int64)
        self.samples = self.frames = 0
        self.since_ns: int | None = None  # frames before the audio starts are not kept

    def add(self, data: Any, at_ns: int) -> None:
        """Keep one received frame (int16 samples) that arrived at `at_ns`."""
        if self.since_ns is None or at_ns < self.since_ns or self.frames == self.frame_ns.size:
            return
        x = np.frombuffer(data, dtype=np.int16)
        n = min(x.size, self.pcm.size - self.samples)
        if n <= 0:
            return
        self.pcm[self.samples : self.samples + n] = x[:n]
        self.frame_start[self.frames] = self.samples
        self.frame_ns[self.frames] = at_ns
        self.samples += n
        self.frames += 1

    def onset_times_ns(self, threshold: float, quiet: int) -> np.ndarray:
        """The arrival time of every onset heard."""
        index = onsets(self.pcm[: self.samples], threshold, quiet)
        if index.size == 0:
            return np.zeros(0, dtype=np.int64)
        return sample_times_ns(index, self.frame_start[: self.frames], self.frame_ns[: self.frames])


def _token(api_key: str, api_secret: str, identity: str, room: str) -> str:
    grants = api.VideoGrants(room_join=True, room=room)
    token = api.AccessToken(api_key, api_secret).with_identity(identity).with_grants(grants)
    return token.to_jwt()


async def _speak(
    source: rtc.AudioSource, samples: np.ndarray, t0: float, sent_ns: np.ndarray
) -> None:
    for i in range(samples.shape[0] // FRAME):
        frame = rtc.AudioFrame(samples[i * FRAME : (i + 1) * FRAME].tobytes(), RATE, 1, FRAME)
        sent_ns[i] = time.monotonic_ns()
        await source.capture_frame(frame)
        await asyncio.sleep(max(0.0, t0 + (i + 1) * FRAME / RATE - time.monotonic()))


async def _listen(track: rtc.Track, recorder: Recorder) -> None:
    stream = rtc.AudioStream(track, sample_rate=RATE, num_channels=1)
    try:
        async for event in stream:
            recorder.add(event.frame.data, time.monotonic_ns())
    finally:
        await stream.aclose()


def summarise(
    signals: list[np.ndarray],
    sent_ns: list[np.ndarray],
    recorders: list[Recorder],
    connected: list[bool],
) -> dict[str, Any]:
    """The run's summary (see the module docstring); agent i hears agent i ^ 1."""
    threshold = ONSET_FRACTION * AMPLITUDE * 32767
    quiet = int(QUIET_S * RATE)
    directions = []
    for i, samples in enumerate(signals):
        index = onsets(samples, threshold, quiet)
        frame_start = np.arange(sent_ns[i].size, dtype=np.int64) * FRAME
        sent = sample_times_ns(index, frame_start, sent_ns[i]) if index.size else index
        heard = recorders[i ^ 1]
        latencies = match_bursts(sent, heard.onset_times_ns(threshold, quiet), int(PERIOD_S * 1e9))
        directions.append(
            {
                "from": i,
                "to": i ^ 1,
                "samples_sent": int(samples.size),
                "samples_heard": heard.samples,
                "bursts_sent": len(latencies),
                "bursts_lost": sum(x is None for x in latencies),
                "latencies_ms": latencies,
            }
        )
    pairs = len(signals) // 2
    heard_enough = [
        recorders[i ^ 1].samples >= COMPLETE_SHARE * samples.size
        for i, samples in enumerate(signals)
    ]
    complete = [
        all(connected[2 * p : 2 * p + 2]) and all(heard_enough[2 * p : 2 * p + 2])
        for p in range(pairs)
    ]
    return {
        "pairs": pairs,
        "conversations_complete": sum(complete),
        "complete": complete,
        "bursts_sent": sum(d["bursts_sent"] for d in directions),
        "bursts_lost": sum(d["bursts_lost"] for d in directions),
        "directions": directions,
    }


def _fifo(param: os.sched_param, policy: int = os.SCHED_FIFO) -> None:
    """Every thread of this process under `policy` (best effort: no privilege, no change)."""
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):
            os.sched_setscheduler(int(tid), policy, param)


class Session:
    """`n` participants of ours: each one's room, source, recorder, and whether it hears its
    peer and is still connected; `leave()` cancels and awaits every listener, then leaves."""

    def __init__(self, args: argparse.Namespace, n: int) -> None:
        self.args = args
        self.rooms: list[rtc.Room] = []
        self.sources: list[rtc.AudioSource] = []
        self.listeners: list[asyncio.Task[None]] = []
        self.heard = [asyncio.Event() for _ in range(n)]
        self.connected = [True] * n
        self.recorders = [Recorder(args.duration + TAIL_S + 2.0) for _ in range(n)]
        self.talked_s = float("nan")

    async def join(self, i: int, identity: str, room_name: str) -> None:
        """Participant `i` joins `room_name`, publishes its microphone and records what it hears."""
        room = rtc.Room()
        self.rooms.append(room)

        def on_track(track: rtc.Track, *_: object) -> None:
            task = asyncio.create_task(_listen(track, self.recorders[i]), name=f"listen {i}")
            self.listeners.append(task)
            self.heard[i].set()

        def on_disconnected(*_: object) -> None:
            self.connected[i] = False

        room.on("track_subscribed", on_track)
        room.on("disconnected", on_disconnected)
        args = self.args
        await room.connect(args.url, _token(args.api_key, args.api_secret, identity, room_name))
        source = rtc.AudioSource(RATE, 1, queue_size_ms=0)
        self.sources.append(source)
        track = rtc.LocalAudioTrack.create_audio_track("mic", source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        await room.local_participant.publish_track(track, options)

    async def talk(self, signals: list[np.ndarray], sent_ns: list[np.ndarray]) -> list[bool]:
        """Once everyone hears its peer: mark the audio's start, say every signal at once in real
        time, let the last audio arrive; who stayed connected throughout."""
        async with asyncio.timeout(60):
            for event in self.heard:
                await event.wait()
        await asyncio.to_thread(Path(self.args.marker).touch)
        if self.args.fifo:
            _fifo(os.sched_param(1))
        t0 = time.monotonic()
        for recorder in self.recorders:
            recorder.since_ns = time.monotonic_ns()
        async with asyncio.TaskGroup() as group:
            for source, samples, sent in zip(self.sources, signals, sent_ns, strict=True):
                group.create_task(_speak(source, samples, t0, sent))
        self.talked_s = time.monotonic() - t0
        await asyncio.sleep(TAIL_S)  # the last audio still in flight
        return list(self.connected)  # leaving below is not a lost connection

    async def leave(self) -> None:
        """Normal scheduling again; every listener cancelled and awaited; every room left."""
        if self.args.fifo:
            _fifo(os.sched_param(0), os.SCHED_OTHER)
        for task in self.listeners:
            task.cancel()
        for task in self.listeners:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for room in self.rooms:
            await room.disconnect()
        for source in self.sources:
            await source.aclose()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    """Join every pair, wait until each hears the other, talk for the duration, leave; then
    find the bursts and summarise."""
    agents = 2 * args.pairs
    session = Session(args, agents)
    signals = [
        _signal(*((440.0, 0.5) if i % 2 == 0 else (550.0, 1.0)), args.duration)
        for i in range(agents)
    ]
    sent_ns = [np.zeros(s.size // FRAME, dtype=np.int64) for s in signals]
    try:
        for i in range(agents):
            await session.join(i, f"bare-{i}", f"bare-{i // 2}")
        ended = await session.talk(signals, sent_ns)
    finally:
        await session.leave()
    summary = summarise(signals, sent_ns, session.recorders, ended)
    summary.update(duration_s=args.duration, talked_s=round(session.talked_s, 2))
    return summary


async def callers(args: argparse.Namespace) -> dict[str, Any]:
    """Every caller joins its own room and dispatches the agent into it; once each hears the
    agent, all say their turns; then count the turns the agent answered."""
    session = Session(args, args.pairs)
    samples, ends = turn_signal(args.duration, args.window)
    sent_ns = [np.zeros(samples.size // FRAME, dtype=np.int64) for _ in range(args.pairs)]
    http = args.url.replace("ws", "http", 1)
    try:
        async with api.LiveKitAPI(http, args.api_key, args.api_secret) as lk:
            for i in range(args.pairs):
                await session.join(i, f"bare-caller-{i}", f"bare-caller-{i}")
                request = api.CreateAgentDispatchRequest(
                    agent_name=args.agent, room=f"bare-caller-{i}"
                )
                await lk.agent_dispatch.create_dispatch(request)
        ended = await session.talk([samples] * args.pairs, sent_ns)
    finally:
        await session.leave()
    frame_start = np.arange(samples.size // FRAME, dtype=np.int64) * FRAME
    threshold, quiet = ONSET_FRACTION * AMPLITUDE * 32767, int(QUIET_S * RATE)
    answered = []
    for i, recorder in enumerate(session.recorders):
        said = sample_times_ns(np.array(ends), frame_start, sent_ns[i])
        heard = recorder.onset_times_ns(threshold, quiet)
        window_ns = int(args.window * 1e9)
        answered.append(sum(bool(((heard > t) & (heard < t + window_ns)).any()) for t in said))
    return {
        "callers": args.pairs,
        "connected": ended,
        "turns_sent": len(ends),
        "turns_answered": answered,
        "duration_s": args.duration,
        "talked_s": round(session.talked_s, 2),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks._bare_sdk", description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--api-key", default="devkey")
    parser.add_argument("--api-secret", default="secret")
    parser.add_argument("--pairs", type=int, default=1)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--marker", required=True, help="file created when the audio starts")
    parser.add_argument("--summary", type=Path, help="write the run's summary here (JSON)")
    parser.add_argument("--fifo", action="store_true", help="SCHED_FIFO while the audio runs")
    parser.add_argument("--agent", help="callers of the agent registered under this name")
    parser.add_argument("--window", type=float, default=5.0, help="a caller's answer window (s)")
    args = parser.parse_args()
    result = asyncio.run(callers(args) if args.agent else main(args))
    if args.summary is not None:
        args.summary.write_text(json.dumps(result))
    if args.agent:
        print(f"callers: {result['turns_answered']} of {result['turns_sent']} turns answered")
        sys.stdout.flush()
        os._exit(0)
    heard_ms = [x for d in result["directions"] for x in d["latencies_ms"] if x is not None]
    median = f"{np.median(heard_ms):.1f} ms" if heard_ms else "-"
    print(
        f"{result['conversations_complete']}/{result['pairs']} conversations complete; "
        f"bursts lost {result['bursts_lost']}/{result['bursts_sent']}; latency median {median}; "
        f"{result['duration_s']:g} s of audio sent in {result['talked_s']:.1f} s"
    )
    # The SDK's Rust threads can panic while the interpreter finalises ("panic in a function
    # that cannot unwind", SIGABRT) after everything was closed; the measurement is over by then.
    sys.stdout.flush()
    os._exit(0)
