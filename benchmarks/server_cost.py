"""Server cost against a baseline commit: CPU seconds per forwarded stream-minute, A/B.

``python -m benchmarks.server_cost [--quick] [--base REF] [--red off]``. The goal: the embedded
server's CPU per forwarded stream-minute stays within 10 % of what it was before the server
learned resume, data tracks and dispatch, measured in the same benchmark run: ``ratio`` = the
current tree's median over the base's median, goal <= 1.10.

Two servers take turns. *current* is ``python -m echoproof.sfu`` of this source tree (uncommitted
changes included); *base* is the server of the commit ``--base`` (default :data:`BASE`), exported
with ``git archive`` into a temporary directory and run with ``PYTHONPATH`` there and the same
interpreter and packages (an export leaves nothing in the repository to clean up, unlike a
``git worktree``). Repeat i runs current then base, repeat i + 1 base then current, so that drift
in the machine's load hits both alike.

The load of one trial: ``rooms`` rooms, each with one publisher and ``listeners`` listeners, all
SDK participants (``rtc.Room``) in this process. Each publisher sends a continuous 440 Hz tone
(10 ms frames in real time, one sending task for all; Opus, DTX never engages) with the SDK's
default publish options (RED offered; ``--red off`` publishes plain Opus); each listener
subscribes to its room's track (auto-subscribe) without decoding it. One publisher per room so
that every server forwards the same streams: the base forwards every track to everyone, the
current server only what is subscribed. Once every listener has the track and 2 s have passed,
the window starts: the server process's utime + stime (``/proc/<pid>/stat``) over the window,
divided by the stream-minutes forwarded (listeners' subscribed tracks x window). Beside it, as a
cross-check that counts no stream, CPU ms per 1000 packets the listeners received in the window
(their RTP statistics). Sizes: quick 2 rooms x 2 listeners, 12 s, 2 repeats (about 70 s);
full 4 x 3 (12 streams), 30 s, 3 repeats (about 4 minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import io
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from livekit import api, rtc

from benchmarks._server import ROOT, cpu_seconds, sfu_process
from echoproof.aiotasks import cancel_and_wait

# The last commit before the server learned resume, data tracks and dispatch: the first commit of
# that work, 25bc016 (metadata updates), has this parent (there, the server is the top-level sfu/).
BASE = "5e6fd0b"
GOAL_RATIO = 1.10
API_KEY = "devkey"
API_SECRET = "echoproof-server-cost-secret-0123456789"
RATE = 48000
FRAME = 480
SETTLE_S = 2.0


@dataclasses.dataclass(frozen=True)
class Load:
    """The size of one trial."""

    rooms: int
    listeners: int
    window_s: float
    repeats: int
    red: bool = True

    @property
    def streams(self) -> int:
        return self.rooms * self.listeners


QUICK = Load(rooms=2, listeners=2, window_s=12.0, repeats=2)
FULL = Load(rooms=4, listeners=3, window_s=30.0, repeats=3)


def _git(*args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"git {' '.join(args)} failed in {ROOT} ({done.stderr.strip()}); the server-cost "
            "benchmark needs a git checkout holding the base commit"
        )
    return done.stdout.strip()


@contextlib.contextmanager
def exported(commit: str) -> Iterator[Path]:
    """The tree of ``commit`` in a temporary directory (``git archive``), removed on exit."""
    tar = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", commit],
        capture_output=True,
        check=True,
    ).stdout
    with tempfile.TemporaryDirectory(prefix="echoproof-base-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
            archive.extractall(tmp, filter="data")
        yield Path(tmp)


def _token(identity: str, room: str) -> str:
    grants = api.VideoGrants(room_join=True, room=room)
    return api.AccessToken(API_KEY, API_SECRET).with_identity(identity).with_grants(grants).to_jwt()


async def _speak(sources: list[rtc.AudioSource], late_ms: list[float]) -> None:
    """Every source gets the tone's next 10 ms frame every 10 ms, against absolute deadlines."""
    t = np.arange(RATE) / RATE  # one second: 440 whole periods, so it loops seamlessly
    tone = (0.3 * 32767 * np.sin(2 * np.pi * 440.0 * t)).astype(np.int16)
    frames = [tone[i : i + FRAME].tobytes() for i in range(0, RATE, FRAME)]
    t0 = time.monotonic()
    i = 0
    while True:
        for source in sources:
            await source.capture_frame(rtc.AudioFrame(frames[i % len(frames)], RATE, 1, FRAME))
        i += 1
        delay = t0 + i * FRAME / RATE - time.monotonic()
        late_ms.append(max(0.0, -delay) * 1000)
        await asyncio.sleep(max(0.0, delay))


async def _packets_received(rooms: list[rtc.Room]) -> int:
    """Audio RTP packets the listeners have received so far (their RTP statistics)."""
    total = 0
    for room in rooms:
        stats = await room.get_rtc_stats()
        for s in stats.subscriber_stats:
            if s.WhichOneof("stats") == "inbound_rtp" and s.inbound_rtp.stream.kind == "audio":
                total += s.inbound_rtp.received.packets_received
    return total


async def trial(root: Path, load: Load) -> dict[str, Any]:
    """One trial against ``python -m echoproof.sfu`` of source tree ``root``: the server's CPU per
    forwarded stream-minute over the window (see the module docstring)."""
    async with sfu_process("--api-secret", API_SECRET, root=root) as (url, pid):
        listeners: list[rtc.Room] = []
        publishers: list[rtc.Room] = []
        sources: list[rtc.AudioSource] = []
        speaker: asyncio.Task[None] | None = None
        subscribed = 0
        everyone = asyncio.Event()

        def on_track(track: rtc.Track, *_: object) -> None:
            nonlocal subscribed
            if track.kind == rtc.TrackKind.KIND_AUDIO:
                subscribed += 1
                if subscribed == load.streams:
                    everyone.set()

        try:
            for r in range(load.rooms):
                name = f"cost-{r}"
                for j in range(load.listeners):
                    room = rtc.Room()
                    listeners.append(room)
                    room.on("track_subscribed", on_track)
                    await room.connect(url, _token(f"listener-{r}-{j}", name))
                room = rtc.Room()
                publishers.append(room)
                await room.connect(url, _token(f"publisher-{r}", name))
                source = rtc.AudioSource(RATE, 1, queue_size_ms=0)
                sources.append(source)
                track = rtc.LocalAudioTrack.create_audio_track("tone", source)
                options = rtc.TrackPublishOptions(
                    source=rtc.TrackSource.SOURCE_MICROPHONE, red=load.red
                )
                await room.local_participant.publish_track(track, options)
            late_ms: list[float] = []
            speaker = asyncio.create_task(_speak(sources, late_ms), name="server-cost speaker")
            async with asyncio.timeout(60):
                await everyone.wait()
            await asyncio.sleep(SETTLE_S)
            packets_before = await _packets_received(listeners)
            cpu_before, wall_before = cpu_seconds(pid), time.monotonic()
            late_ms.clear()
            await asyncio.sleep(load.window_s)
            cpu, wall = cpu_seconds(pid) - cpu_before, time.monotonic() - wall_before
            packets = await _packets_received(listeners) - packets_before
        finally:
            await cancel_and_wait(speaker)
            for room in listeners + publishers:
                with contextlib.suppress(Exception):  # leaving is best effort
                    await asyncio.wait_for(room.disconnect(), 5)
            for source in sources:
                await source.aclose()
    stream_min = subscribed * wall / 60
    return {
        "window_s": round(wall, 3),
        "streams": subscribed,
        "server_cpu_s": round(cpu, 3),
        "cpu_s_per_stream_min": round(cpu / stream_min, 4),
        "packets": packets,
        "packets_per_stream_s": round(packets / subscribed / wall, 2),
        "cpu_ms_per_1000_packets": round(1e6 * cpu / packets, 2) if packets else None,
        "sender_late_p99_ms": round(float(np.percentile(late_ms, 99)), 2) if late_ms else None,
    }


async def _compare(base_root: Path, load: Load) -> dict[str, list[dict[str, Any]]]:
    trees = {"current": ROOT, "base": base_root}
    trials: dict[str, list[dict[str, Any]]] = {"current": [], "base": []}
    for i in range(load.repeats):
        for name in ("current", "base") if i % 2 == 0 else ("base", "current"):
            trials[name].append(await trial(trees[name], load))
    return trials


def run(quick: bool = False, base: str = BASE, red: bool = True) -> dict[str, Any]:
    """Measure both servers, print a small table; returns the figures (see the docstring)."""
    load = dataclasses.replace(QUICK if quick else FULL, red=red)
    base_commit = _git("rev-parse", "--verify", f"{base}^{{commit}}")
    head = _git("rev-parse", "HEAD")
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    with exported(base_commit) as base_root:
        trials = asyncio.run(_compare(base_root, load))

    def median(name: str, key: str) -> float:
        return float(statistics.median(t[key] for t in trials[name]))

    current, before = (median(n, "cpu_s_per_stream_min") for n in ("current", "base"))
    paired = [
        round(c["cpu_s_per_stream_min"] / b["cpu_s_per_stream_min"], 3)
        for c, b in zip(trials["current"], trials["base"], strict=True)
    ]
    results: dict[str, Any] = {
        "base": {"ref": base, "commit": base_commit},
        "current": {"commit": head, "uncommitted_changes": dirty},
        "load": {
            "rooms": load.rooms,
            "listeners_per_room": load.listeners,
            "streams": load.streams,
            "window_s": load.window_s,
            "repeats": load.repeats,
            "red": load.red,
        },
        "current_cpu_s_per_stream_min": round(current, 4),
        "base_cpu_s_per_stream_min": round(before, 4),
        "ratio": round(current / before, 3),
        "goal_ratio": GOAL_RATIO,
        "within_goal": current / before <= GOAL_RATIO,
        "paired_ratios": paired,
        "current_cpu_ms_per_1000_packets": median("current", "cpu_ms_per_1000_packets"),
        "base_cpu_ms_per_1000_packets": median("base", "cpu_ms_per_1000_packets"),
        "trials": trials,
    }
    _print(results)
    return results


def _print(r: dict[str, Any]) -> None:
    load = r["load"]
    print(
        f"{load['rooms']} rooms x {load['listeners_per_room']} listeners = {load['streams']} "
        f"streams, {load['window_s']:g} s windows, {load['repeats']} repeat(s) each, RED "
        f"{'offered' if load['red'] else 'off'}; base {r['base']['ref']} "
        f"({r['base']['commit'][:10]}), current {r['current']['commit'][:10]}"
        f"{' + uncommitted changes' if r['current']['uncommitted_changes'] else ''}"
    )
    print(f"{'server':8} {'CPU s/stream-min':>16} {'CPU ms/1000 pkts':>16} {'per trial':>28}")
    for name in ("current", "base"):
        per = ", ".join(f"{t['cpu_s_per_stream_min']:.3f}" for t in r["trials"][name])
        print(
            f"{name:8} {r[f'{name}_cpu_s_per_stream_min']:>16.4f} "
            f"{r[f'{name}_cpu_ms_per_1000_packets']:>16.2f} {per:>28}"
        )
    verdict = "PASS" if r["within_goal"] else "MISS"
    print(f"ratio current / base {r['ratio']:.3f} (goal <= {r['goal_ratio']}): {verdict}; "
          f"paired per repeat {r['paired_ratios']}")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.server_cost", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2 x 2 streams, 12 s, 2 repeats")
    parser.add_argument("--base", default=BASE, help=f"the commit to compare with ({BASE})")
    parser.add_argument("--red", choices=["on", "off"], default="on", help="publishers offer RED")
    args = parser.parse_args()
    run(quick=args.quick, base=args.base, red=args.red == "on")
    sys.stdout.flush()
