"""Faults and impairment mid-run, end to end: a participant removed by the server API, the
network gone for three seconds in one direction, a delay in one direction. (The server killed
mid-run and SIGINT/SIGTERM are in test_cli.py.)"""

from __future__ import annotations

import asyncio
import json
import wave
from pathlib import Path

from livekit import api

import verify
from pipeline import capture
from pipeline.config import from_dict
from pipeline.recording.wav import HEADER_BYTES as WAV_HEADER
from tests.conftest import scaled
from tests.pipeline.conftest import LiveServer, free_port, start_cli, wait_talking, write_config

WAVS = ("support-from-customer.wav", "customer-from-support.wav")


def _valid_wav_seconds(path: Path) -> float:
    """The WAV's length in seconds, after checking its header matches its size."""
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 48000)
        frames = w.getnframes()
    assert path.stat().st_size == WAV_HEADER + 2 * frames
    return frames / 48000


def _errors(stderr: str) -> list[str]:
    assert "Traceback" not in stderr
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


async def test_participant_removed_by_the_server_fails_the_run(
    server: LiveServer, tmp_path: Path
) -> None:
    """RemoveParticipant on the Support agent mid-run: the run stops, says who was removed, keeps
    valid WAVs, and exits 3 with that one-line reason."""
    config = write_config(
        tmp_path / "c.json",
        server.url,
        server.api_key,
        server.api_secret,
        connect_timeout_s=5,
        signing_key=str(tmp_path / "signing-key.pem"),
    )
    out = tmp_path / "recordings"
    proc = await start_cli("--config", str(config), "--duration", "30", "--out", str(out))
    try:
        stderr = await wait_talking(proc)
        await asyncio.sleep(1.5)
        http = server.url.replace("ws://", "http://")
        async with api.LiveKitAPI(http, server.api_key, server.api_secret) as lk:
            (room,) = (await lk.room.list_rooms(api.ListRoomsRequest())).rooms
            people = await lk.room.list_participants(api.ListParticipantsRequest(room=room.name))
            (support,) = [p.identity for p in people.participants if p.identity.startswith("sup")]
            await lk.room.remove_participant(
                api.RoomParticipantIdentity(room=room.name, identity=support)
            )
        stdout, rest = await asyncio.wait_for(proc.communicate(), scaled(30))
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 3, (stderr + rest).decode()
    reason = f"{support} was removed from the room by the server."
    (run,) = out.iterdir()
    manifest = json.loads((run / "manifest.json").read_text())
    assert (manifest["status"], manifest["reason"]) == ("failed", reason)
    assert _errors(rest.decode()) == [f"error: run {run.name} failed: {reason}"]
    assert f"reason: {reason}" in stdout.decode()
    for wav in WAVS:
        assert 1.0 < _valid_wav_seconds(run / wav) < 20
    report = json.loads((run / "report.json").read_text())
    assert (report["status"], report["reason"]) == ("failed", reason)
    assert f"run status is failed, expected complete: {reason}" in report["verdict"]["failures"]
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    assert {"agent": "support", "event": "disconnected", "reason": "PARTICIPANT_REMOVED"} in [
        {k: e.get(k) for k in ("agent", "event", "reason")} for e in events
    ]


async def test_three_second_outage_fails_that_direction(tmp_path: Path) -> None:
    """The network drops the Customer's audio for 3 s (embedded server, from config.json): the run
    completes, the report counts the lost bursts in customer->support only, and the default
    thresholds fail it naming that direction (exit 1)."""
    config = write_config(
        tmp_path / "c.json",
        f"ws://127.0.0.1:{free_port()}",
        "devkey",
        "a-long-enough-secret-for-hs256-0123456789",
        signing_key=str(tmp_path / "signing-key.pem"),
        impairment={"outages": [[2.0, 3.0]], "support_to_customer": {"outages": []}},
    )
    out = tmp_path / "recordings"
    proc = await start_cli("--config", str(config), "--duration", "8", "--out", str(out))
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), scaled(90))
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 1, stderr.decode()
    assert not _errors(stderr.decode())
    (run,) = out.iterdir()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["embedded_server"] is True
    impairment = manifest["config"]["impairment"]
    assert impairment["customer_to_support"]["outages"] == [[2.0, 3.0]]
    assert impairment["support_to_customer"]["outages"] == []
    for wav in WAVS:
        assert _valid_wav_seconds(run / wav) > 7
    report = json.loads((run / "report.json").read_text())
    directions = {f"{d['from']}->{d['to']}": d for d in report["directions"]}
    # Bursts every second from t=0: those at 2, 3 and 4 s fall in the outage (its start is
    # counted from the stream's first packet, a little before the first burst).
    assert 2 <= directions["customer->support"]["bursts_lost"] <= 4
    assert directions["support->customer"]["bursts_lost"] == 0
    failures = report["verdict"]["failures"]
    assert any(f.startswith("customer->support: bursts lost") for f in failures), failures
    assert not any(f.startswith("support->customer: bursts lost") for f in failures), failures
    line = next(x for x in stdout.decode().splitlines() if x.startswith("FAIL: "))
    assert "customer->support: bursts lost" in line


async def test_delay_applies_to_its_direction_only(tmp_path: Path) -> None:
    """A 300 ms delay on support->customer (an embedded server the run starts): that direction's
    median mouth-to-ear latency is about 300 ms above the other's, and no burst is lost."""
    livekit = {
        "url": f"ws://127.0.0.1:{free_port()}",
        "api_key": "devkey",
        "api_secret": "a-long-enough-secret-for-hs256-0123456789",
    }
    config = from_dict(
        {
            "livekit": livekit,
            "out_dir": str(tmp_path),
            "duration_s": 6,
            "impairment": {"support_to_customer": {"delay_ms": 300}},
        }
    )
    async with asyncio.timeout(scaled(90)):
        (outcome,) = await capture(config)
    assert outcome.status == "complete", outcome.reason
    verify.write_report(outcome.run_dir, key_path=tmp_path / "signing-key.pem")
    report = json.loads((outcome.run_dir / "report.json").read_text())
    d = {f"{x['from']}->{x['to']}": x for x in report["directions"]}
    assert d["customer->support"]["bursts_lost"] == d["support->customer"]["bursts_lost"] == 0
    extra = (
        d["support->customer"]["latency_ms"]["median"]
        - d["customer->support"]["latency_ms"]["median"]
    )
    assert 200 <= extra <= 450, extra
