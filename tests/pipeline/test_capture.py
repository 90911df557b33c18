"""End to end, in process: real embedded server, real SDK agents, real files."""

from __future__ import annotations

import asyncio
import csv
import json
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np

import dsp
from pipeline import Outcome, capture
from pipeline.config import Config, from_dict
from pipeline.gate import SETTLE_S, StartGate
from tests.conftest import scaled
from tests.pipeline.conftest import LiveServer

EVIDENCE = {
    "manifest.json",
    "support-from-customer.wav",
    "customer-from-support.wav",
    "support-from-customer.arrivals.csv",
    "customer-from-support.arrivals.csv",
    "customer.sent.csv",
    "support.sent.csv",
    "customer.bursts.csv",
    "support.bursts.csv",
    "rtc-stats.json",
    "rtc-stats-samples.jsonl",
    "events.jsonl",
    "host.csv",
    "probe.wav",  # the speech-like probe (on by default) and where each sender played it
    "customer.probe.csv",
    "support.probe.csv",
}
TONES = {"customer": 440.0, "support": 550.0}
# A 10 ms block holds a tone when its amplitude is at least 0.05 of full scale (sent at 0.5).
_FLOOR = (0.05 * 32767 * 480 / 2) ** 2


def _config(server: LiveServer, out: Path, **fields: Any) -> Config:
    livekit = {"url": server.url, "api_key": server.api_key, "api_secret": server.api_secret}
    return from_dict({"livekit": livekit, "out_dir": str(out), "duration_s": 6, **fields})


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 48000)
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


def check_direction(run: Path, outcome: Outcome, sender: str, receiver: str) -> None:
    """The receiver's WAV holds the sender's tone once per burst, right after it was sent, and
    every counter agrees with the WAV and the timing files."""
    counters = {"customer": outcome.customer, "support": outcome.support}
    s, r = counters[sender], counters[receiver]
    audio = _wav(run / f"{receiver}-from-{sender}.wav")
    arrivals = _rows(run / f"{receiver}-from-{sender}.arrivals.csv")
    sent = _rows(run / f"{sender}.sent.csv")
    bursts = _rows(run / f"{sender}.bursts.csv")

    # Counters agree with the files.
    assert len(audio) == r.samples_received == sum(int(a["samples"]) for a in arrivals)
    assert len(arrivals) == r.frames_received
    assert r.bytes_received == 2 * len(audio)
    assert len(sent) == s.frames_sent == 600
    assert s.bytes_sent == 960 * len(sent)
    assert len(bursts) == s.bursts_sent == 5
    assert [int(a["sample"]) for a in arrivals] == list(
        np.cumsum([0] + [int(a["samples"]) for a in arrivals])[:-1]
    )
    assert r.frames_received >= 0.95 * s.frames_sent

    # The tone: one run of blocks per burst, the sender's tone only, each soon after it was sent.
    powers = dsp.goertzel_power(audio, 48000, [TONES[sender], TONES[receiver]])
    # (10 ms blocks leak about -21 dB of one tone into the other: compare, not just threshold.)
    own = (powers[:, 1] > _FLOOR) & (powers[:, 1] > powers[:, 0])
    assert not own.any(), "the receiver hears its own tone"
    loud = (powers[:, 0] > _FLOOR) & (powers[:, 0] > 4 * powers[:, 1])
    # Heard for about the bursts' length in all (a loaded machine may conceal or stretch a bit).
    assert 0.7 * 30 * len(bursts) <= int(loud.sum()) <= 40 * len(bursts)
    assert 0.7 * 0.3 * len(bursts) <= r.heard_s <= 0.4 * len(bursts)
    # Each burst: heard in what arrived within 950 ms of sending it (its matching window).
    arrival_ns = np.array([int(a["t_ns"]) for a in arrivals])
    arrival_block = np.array([int(a["sample"]) // 480 for a in arrivals])
    for burst in bursts:
        sent_ns = int(sent[int(burst["start_sample"]) // 480]["t_ns"])
        first, last = np.searchsorted(arrival_ns, [sent_ns, sent_ns + 950_000_000])
        window = loud[arrival_block[first] : arrival_block[last - 1] + 1]
        assert window.sum() >= 15, f"burst {burst['burst']}: {window.sum()} of 30 blocks heard"


def check_run(outcome: Outcome, mode: str) -> dict[str, Any]:
    """The run folder holds exactly the evidence, a complete manifest without secrets."""
    run = outcome.run_dir
    assert outcome.status == "complete", outcome.reason
    assert {p.name for p in run.iterdir()} == EVIDENCE
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["reason"] is None
    assert manifest["mode"] == mode
    assert manifest["participants"]["customer"]["identity"].startswith("customer-")
    assert manifest["participants"]["support"]["identity"].startswith("support-agent-")
    assert "api_key" not in json.dumps(manifest["config"])
    assert "api_secret" not in json.dumps(manifest["config"])
    check_direction(run, outcome, "customer", "support")
    check_direction(run, outcome, "support", "customer")

    stats = json.loads((run / "rtc-stats.json").read_text())
    for role in ("customer", "support"):
        assert stats[role]["final"]["publisher_stats"], role
        kinds = {
            next(iter(k for k in s if k != "rtc")) for s in stats[role]["final"]["subscriber_stats"]
        }
        assert "inbound_rtp" in kinds, kinds
    # the samples on disk as they were taken, each role's in time order
    samples = [json.loads(line) for line in (run / "rtc-stats-samples.jsonl").open()]
    assert manifest["rtc_samples"] == "rtc-stats-samples.jsonl"
    for role in ("customer", "support"):
        times = [s["t_ns"] for s in samples if s["role"] == role]
        assert times and times == sorted(times), role
        assert all("subscriber_stats" in s for s in samples)

    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    seen = {(e["agent"], e["event"]) for e in events}
    for role in ("customer", "support"):
        for event in ("connected", "track_subscribed", "disconnected"):
            assert (role, event) in seen
    return manifest


async def test_turns_conversation(server: LiveServer, tmp_path: Path) -> None:
    """Six seconds of turns: each agent hears the other's five bursts and nothing of its own."""
    async with asyncio.timeout(scaled(60)):
        (outcome,) = await capture(_config(server, tmp_path))
    manifest = check_run(outcome, "turns")
    assert manifest["embedded_server"] is False
    customer = _rows(outcome.run_dir / "customer.bursts.csv")
    support = _rows(outcome.run_dir / "support.bursts.csv")
    assert all(
        int(s["start_sample"]) - int(c["start_sample"]) == 24000
        for c, s in zip(customer, support, strict=True)
    )


async def test_duplex_conversation(server: LiveServer, tmp_path: Path) -> None:
    """Duplex: both agents talk at the same instants and both still hear each other."""
    async with asyncio.timeout(scaled(60)):
        (outcome,) = await capture(_config(server, tmp_path, mode="duplex"))
    check_run(outcome, "duplex")
    customer = _rows(outcome.run_dir / "customer.bursts.csv")
    support = _rows(outcome.run_dir / "support.bursts.csv")
    assert [c["start_sample"] for c in customer] == [s["start_sample"] for s in support]


async def test_two_pairs_at_once(server: LiveServer, tmp_path: Path) -> None:
    """--pairs 2: two rooms, two run folders, each complete with its own agents."""
    async with asyncio.timeout(scaled(60)):
        outcomes = await capture(_config(server, tmp_path, pairs=2))
    assert len(outcomes) == 2
    rooms, identities = set(), set()
    for o in outcomes:
        manifest = check_run(o, "turns")
        rooms.add(manifest["room"])
        identities |= {p["identity"] for p in manifest["participants"].values()}
    assert len(rooms) == 2 and len(identities) == 4
    starts = set()
    for o in outcomes:
        events = [json.loads(x) for x in (o.run_dir / "events.jsonl").read_text().splitlines()]
        starts |= {e["start_ns"] for e in events if e["event"] == "conversation_started"}
    assert len(starts) == 1  # both talk from one instant, once both have joined
    manifests = [json.loads((o.run_dir / "manifest.json").read_text()) for o in outcomes]
    assert len({m["fleet"]["id"] for m in manifests}) == 1  # verify summarises them together
    assert sorted(o.run_dir.name for o in outcomes) == sorted(o.run_id for o in outcomes)
    assert all(o.run_dir.parent == tmp_path for o in outcomes)


async def test_start_gate_opens_once_every_conversation_is_ready_or_gone() -> None:
    """StartGate: one start instant for all, not before the last is ready or has given up."""
    gate = StartGate(3)
    first = asyncio.ensure_future(gate.ready())
    second = asyncio.ensure_future(gate.ready())
    # a negative check has no condition to wait for: watch a while, longer on slow machines
    done, _ = await asyncio.wait((first, second), timeout=scaled(0.2))
    assert not done
    before = time.monotonic_ns()
    gate.leave()  # the third failed to join: nobody waits for it
    starts = await asyncio.wait_for(asyncio.gather(first, second), scaled(5))
    assert starts[0] == starts[1] >= before + int(SETTLE_S * 1e9)
