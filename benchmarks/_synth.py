"""Synthesised run folders with known ground truth, written per docs/evidence.md.

Bursts are placed with `dsp.burst` at known (fractional) sample positions; the receiver hears the
sender's stream shifted by a known delay; chosen bursts are dropped (lost), repeated or delayed
beyond the matching window (late); stretches of the sender's stream can be cut out (outages).
Timing files follow the same clock model, so the mouth-to-ear
latency of every burst is exactly the injected delay. With `probe_share`, each sender also plays
the speech-like probe between its bursts (`pipeline.tones.probe`), heard with the same delay.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import wave
from pathlib import Path
from typing import Any

import numpy as np

import dsp
from echoproof import contract as c

RATE = 48_000
FRAME = 480
T0_NS = 1_000_000_000_000
BURST_S = 0.3
RAMP_S = 0.005
AMPLITUDE = 0.5
TONES = {"customer": 440.0, "support": 550.0}


@dataclasses.dataclass
class Direction:
    """Ground truth of one direction."""

    delay_ms: float = 42.37  # injected mouth-to-ear delay
    lost: tuple[int, ...] = ()  # burst ids never heard
    repeated: tuple[int, ...] = ()  # heard twice, the second 0.4 s later
    late_ms: dict[int, float] = dataclasses.field(default_factory=dict)  # extra delay per burst
    jitter_ms: float = 0.0  # symmetric uniform noise on arrival times
    outliers: float = 0.0  # share of arrival frames yielded 20 ms late
    outages: tuple[tuple[float, float], ...] = ()  # (start s, length s) of sent audio never heard
    outage_fade_s: float = 0.0  # the receiver's concealment: what it heard fades out over this
    jitter_buffer_ms: float | None = None  # the receiver's mean jitter-buffer delay (SDK stats)


@dataclasses.dataclass
class Spec:
    """A run to synthesise: its length, its burst period and each direction's truth."""

    duration_s: float = 6.0
    burst_s: float = BURST_S
    period_s: float = 1.0  # one burst per sender per period; turns: support half a period later
    start_ms: float = 30.0  # receivers' recording starts this long after the senders'
    noise: float = 30.0  # gaussian noise sd (int16 units) in what receivers hear
    seed: int = 1
    status: str = "complete"
    thresholds: dict[str, float] | None = None
    # host.csv: one quiet 1 s window per second of the run, plus (at_s, column, value) stalls
    # written into the window ending at at_s; None: a run made before host figures (no file)
    host_stalls: list[tuple[float, str, float]] | None = dataclasses.field(default_factory=list)
    probe_share: float | None = None  # None: no probe in the run
    fleet: str | None = None  # the fleet id the manifest records (None: no fleet)
    customer: Direction = dataclasses.field(default_factory=Direction)
    support: Direction = dataclasses.field(default_factory=lambda: Direction(delay_ms=57.81))


def _write_wav(path: Path, samples: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(samples.astype("<i2").tobytes())


def _write_timing(path: Path, t_ns: np.ndarray, samples_per_frame: int = FRAME) -> None:
    rows = (
        f"{i},{i * samples_per_frame},{samples_per_frame},{t}\n"
        for i, t in enumerate(t_ns.tolist())
    )
    path.write_text("frame,sample,samples,t_ns\n" + "".join(rows))


def schedule(spec: Spec, role: str) -> list[tuple[int, int]]:
    """(burst id, start sample) of every burst `role` sends."""
    first = 0.2 + (0.5 * spec.period_s if role == "support" else 0.0)
    n = burst_len(spec.burst_s)
    total = frames(spec) * FRAME
    out: list[tuple[int, int]] = []
    k = 0
    while True:
        start = round((first + k * spec.period_s) * RATE) + 7 * k  # not frame-aligned
        if start + n > total:
            return out
        out.append((k, start))
        k += 1


def burst_len(burst_s: float = BURST_S) -> int:
    """Samples of one burst waveform."""
    return len(dsp.burst(440.0, burst_s, RATE, amplitude=AMPLITUDE, ramp_s=RAMP_S))


def frames(spec: Spec) -> int:
    """Frames each sender sends."""
    return int(spec.duration_s * RATE) // FRAME


def make_run(root: Path, spec: Spec | None = None, name: str = "20261123T221800Z-1a2b3c4d") -> Path:
    """Write a run folder under `root`; returns its path."""
    spec = spec or Spec()
    run = root / name
    run.mkdir(parents=True)
    rng = np.random.default_rng(spec.seed)
    n_frames = frames(spec)
    sent_t = T0_NS + np.arange(n_frames, dtype=np.int64) * 10_000_000
    stats: dict[str, dict] = {}
    signal = None
    if spec.probe_share is not None:
        from pipeline.tones import probe

        signal = probe.synthetic(1, (TONES["customer"], TONES["support"]))
        probe.write_signal(run, signal)
    for sender, receiver in (("customer", "support"), ("support", "customer")):
        truth: Direction = getattr(spec, sender)
        tone = TONES[sender]
        bursts = schedule(spec, sender)
        _write_timing(run / c.sent_name(sender), sent_t)
        with (run / c.bursts_name(sender)).open("w", newline="") as f:
            out = csv.writer(f, lineterminator="\n")
            out.writerow(c.BURSTS_HEADER)
            for k, start in bursts:
                out.writerow([k, tone, start, burst_len(spec.burst_s)])
        # receiver sample r is produced at T0 + start_ms + r / RATE; sender sample s left at
        # T0 + s / RATE and arrives delay later, so r = s + (delay - start) * RATE
        recv_frames = n_frames - 3
        heard = np.zeros(recv_frames * FRAME, dtype=np.float32)
        for k, start in bursts:
            if k in truth.lost:
                continue
            delays = [truth.delay_ms + truth.late_ms.get(k, 0.0)]
            if k in truth.repeated:
                delays.append(delays[0] + 400.0)
            for delay in delays:
                pos = start + (delay - spec.start_ms) * RATE / 1000.0
                base = math.floor(pos)
                wave_ = dsp.burst(
                    tone, spec.burst_s, RATE, amplitude=AMPLITUDE, ramp_s=RAMP_S, offset=pos - base
                )
                end = min(base + len(wave_), heard.size)
                if base < end:
                    heard[base:end] += wave_[: end - base]
        shift = (truth.delay_ms - spec.start_ms) * RATE / 1000.0  # receiver minus sender sample
        for start_s, length_s in truth.outages:
            lo = max(round(start_s * RATE + shift), 0)
            hi = max(round((start_s + length_s) * RATE + shift), lo)
            fade = heard[lo : min(lo + round(truth.outage_fade_s * RATE), hi)]
            fade *= np.linspace(1.0, 0.0, fade.size, dtype=np.float32)
            heard[lo + fade.size : hi] = 0.0
        if signal is not None:
            heard += _probe_heard(run, spec, sender, signal, shift, heard.size)
        heard += rng.standard_normal(heard.size, dtype=np.float32) * np.float32(spec.noise)
        pcm = np.clip(np.round(heard), -32768, 32767).astype(np.int16)
        _write_wav(run / c.wav_name(receiver), pcm)
        arr_t = T0_NS + round(spec.start_ms * 1e6) + np.arange(recv_frames) * 10_000_000
        noise = rng.uniform(-truth.jitter_ms, truth.jitter_ms, recv_frames) * 1e6
        late = (rng.random(recv_frames) < truth.outliers) * 20e6
        arr_t = np.round(arr_t + noise + late).astype(np.int64)
        arr_t = np.maximum.accumulate(arr_t)  # one monotonic clock
        _write_timing(run / c.arrivals_name(receiver), arr_t)
        stats.setdefault(receiver, {"final": {"publisher_stats": [], "subscriber_stats": []}})
        stats.setdefault(sender, {"final": {"publisher_stats": [], "subscriber_stats": []}})
        packets = recv_frames // 2
        inbound: dict[str, Any] = {
            "bytes_received": str(packets * 80),
            "concealed_samples": "0",
            "concealment_events": "0",
            "total_samples_received": str(recv_frames * FRAME),
        }
        if truth.jitter_buffer_ms is not None:
            # WebRTC's form: seconds summed over every emitted sample, and the sample count
            emitted = recv_frames * FRAME
            inbound["jitter_buffer_emitted_count"] = str(emitted)
            inbound["jitter_buffer_delay"] = emitted * truth.jitter_buffer_ms / 1000.0
            inbound["jitter_buffer_target_delay"] = emitted * truth.jitter_buffer_ms / 2000.0
        stats[receiver]["final"]["subscriber_stats"].append(
            {
                "inbound_rtp": {
                    "stream": {"ssrc": 1, "kind": "audio"},
                    "received": {
                        "packets_received": str(packets),
                        "packets_lost": "0",
                        "jitter": 0.002,
                    },
                    "inbound": inbound,
                }
            }
        )
        stats[sender]["final"]["publisher_stats"].append(
            {
                "outbound_rtp": {
                    "stream": {"ssrc": 1, "kind": "audio"},
                    "sent": {"packets_sent": str(n_frames // 2), "bytes_sent": str(n_frames * 40)},
                }
            }
        )
        stats[receiver]["samples"] = []
    (run / c.RTC_STATS).write_text(json.dumps(stats))
    events = [
        {"t_ns": T0_NS, "agent": role, "event": "connected"} for role in ("customer", "support")
    ]
    (run / c.EVENTS).write_text("".join(json.dumps(e) + "\n" for e in events))
    if spec.host_stalls is not None:
        write_host(run / c.HOST, spec.duration_s, spec.host_stalls)
    config: dict = {"livekit": {"url": "ws://127.0.0.1:7880"}}
    if spec.thresholds is not None:
        config["thresholds"] = spec.thresholds
    manifest = c.Manifest(
        run_id=name,
        room=f"echoproof-{name}",
        server_url="ws://127.0.0.1:7880",
        embedded_server=True,
        mode="turns",
        participants={
            c.CUSTOMER: {"identity": "customer-0001", "tone_hz": TONES[c.CUSTOMER]},
            c.SUPPORT: {"identity": "support-agent-0001", "tone_hz": TONES[c.SUPPORT]},
        },
        directions=c.directions(),
        burst={"duration_s": spec.burst_s, "ramp_s": RAMP_S, "amplitude": AMPLITUDE},
        clock={"monotonic_ns": T0_NS, "wall": "2026-11-23T22:18:00.000000Z"},
        started_at="2026-11-23T22:18:00.000000Z",
        ended_at="2026-11-23T22:18:06.000000Z",
        duration_s=spec.duration_s,
        status=spec.status,
        reason=None if spec.status == "complete" else "interrupted by SIGTERM",
        versions={"echoproof": "0.1.0"},
        config=config,
        host=None if spec.host_stalls is None else {"file": c.HOST, "server_sampled": True},
        fleet=None if spec.fleet is None else {"id": spec.fleet},
    )
    if spec.probe_share is not None:
        from pipeline.config.probe import ProbeConfig
        from pipeline.tones import probe

        manifest.probe = probe.manifest_entry(ProbeConfig(share=spec.probe_share))
    (run / c.MANIFEST).write_text(json.dumps(manifest.to_json(), indent=2))
    return run


def _probe_heard(
    run: Path, spec: Spec, sender: str, signal: np.ndarray, shift: float, size: int
) -> np.ndarray:
    """What the receiver hears of `sender`'s probe pieces (written to its probe.csv), `shift`
    samples later, as int16-scaled float32."""
    from dsp import speech
    from pipeline.tones import probe
    from pipeline.tones.schedule import Burst

    n = burst_len(spec.burst_s)
    bursts = [Burst(k, TONES[sender], start, n) for k, start in schedule(spec, sender)]
    assert spec.probe_share is not None
    pieces = probe.plan(bursts, spec.probe_share, len(signal))
    probe.write_pieces(run, sender, pieces)
    out = np.zeros(size, dtype=np.float32)
    for p in pieces:
        at = p.start_sample + round(shift)
        audio = speech.piece(signal, p.probe_sample, p.samples, RATE) * 32768.0
        end = min(at + p.samples, size)
        if at < end:
            out[at:end] += audio[: end - at].astype(np.float32)
    return out


QUIET_HOST = {
    "window_ms": 1000.0,
    "customer_send_late_ms": 1.5,
    "support_send_late_ms": 1.2,
    "customer_recv_gap_ms": 11.0,
    "support_recv_gap_ms": 11.5,
    "loop_lag_ms": 1.0,
    "capture_wait_ms": 40.0,
    "loop_thread_wait_ms": 8.0,
    "server_wait_ms": 5.0,
    "steal_pct": 0.0,
    "pressure_pct": 3.0,
}


def write_host(path: Path, duration_s: float, stalls: list[tuple[float, str, float]]) -> None:
    """host.csv with a quiet window ending at every whole second, and `stalls` written in; the
    agent worker's columns empty, as in a run of our own two speakers."""
    rows = []
    for k in range(1, math.ceil(duration_s) + 1):
        row = dict(QUIET_HOST)
        for at_s, column, value in stalls:
            if round(at_s) == k:
                row[column] = value
        rows.append(
            [
                str(T0_NS + k * 1_000_000_000),
                *(f"{row[col]:.3f}" if col in row else "" for col in c.HOST_COLUMNS[1:]),
            ]
        )
    lines = [",".join(c.HOST_COLUMNS), *(",".join(r) for r in rows)]
    path.write_text("\n".join(lines) + "\n")


def resign(run: Path, report: dict[str, Any], key: Path) -> None:
    """Write `report` as the run's report.json and sign it with `key`, as a forger with the
    real key would: only the re-check of the figures can catch it."""
    from verify import signing
    from verify.report import signed_files

    payload, envelope = signed_files(report, signing.load_or_create_key(key))
    (run / "report.json").write_bytes(payload)
    (run / "report.dsse.json").write_bytes(envelope)
