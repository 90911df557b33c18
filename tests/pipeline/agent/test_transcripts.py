"""The Customer records the room's transcriptions (pipeline.agent.transcripts): a real SDK
participant sends `lk.transcription` text streams as livekit-agents does, through the embedded
server, and each lands in the transcripts file with whose track it transcribes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

from livekit import api, rtc

from echoproof.contract import CUSTOMER, FINAL, SEGMENT, TRANSCRIBED_TRACK, TRANSCRIPTION_TOPIC
from pipeline.agent.transcripts import TranscriptRecorder, whose_track
from pipeline.recording.evidence import EventLog, TranscriptLog
from pipeline.speaker import Speaker, new_identity
from tests.conftest import scaled
from tests.pipeline.conftest import LiveServer

ROOM = "transcripts-test"


def _token(server: LiveServer, identity: str, kind: str = "standard") -> str:
    grants = api.VideoGrants(room_join=True, room=ROOM)
    t = api.AccessToken(server.api_key, server.api_secret).with_identity(identity)
    return t.with_kind(kind).with_grants(grants).to_jwt()


async def _until(condition: Callable[[], bool], within_s: float) -> None:
    async with asyncio.timeout(scaled(within_s)):
        # Polling: the state lives in the SDK, which offers no event for it.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def test_each_stream_is_recorded_with_whose_track_it_transcribes(
    server: LiveServer, tmp_path: Path
) -> None:
    """The caller's words (interim, final), the agent's reply written in chunks, a stream of
    another track, and one still open when the Customer closes: one line each, in order."""
    log = TranscriptLog(tmp_path / "customer.transcripts.jsonl")
    customer = Speaker(
        CUSTOMER, new_identity(CUSTOMER), tone_hz=440.0, peer_identity=None, peer_hz=550.0,
        queue_size_ms=100, red=True, events=EventLog(tmp_path / "events.jsonl"),
    )  # fmt: skip
    recorder = TranscriptRecorder(log, whose_track(customer))
    customer.on_text_stream(TRANSCRIPTION_TOPIC, recorder.handler)
    agent = rtc.Room()
    try:
        await customer.join(server.url, _token(server, customer.identity), scaled(15))
        await agent.connect(server.url, _token(server, "agent-AJ_test", "agent"))
        source = rtc.AudioSource(48_000, 1)
        track = rtc.LocalAudioTrack.create_audio_track("agent", source)
        own = await agent.local_participant.publish_track(track)

        def customer_track() -> str | None:
            who = agent.remote_participants.get(customer.identity)
            return next(iter(who.track_publications), None) if who else None

        await _until(lambda: customer_track() is not None, 15)
        await _until(lambda: customer.publisher_of(own.sid) is not None, 15)
        theirs = customer_track()
        assert theirs is not None
        lp = agent.local_participant

        async def send(text: str, track: str, segment: str, final: str) -> None:
            attributes = {TRANSCRIBED_TRACK: track, SEGMENT: segment, FINAL: final}
            writer = await lp.stream_text(topic=TRANSCRIPTION_TOPIC, attributes=attributes)
            await writer.write(text)
            await writer.aclose()

        sent_ns = time.monotonic_ns()
        await send("where is", theirs, "SG_1", "false")
        await send("where is my refund", theirs, "SG_1", "true")
        reply = await lp.stream_text(
            topic=TRANSCRIPTION_TOPIC,
            attributes={TRANSCRIBED_TRACK: own.sid, SEGMENT: "SG_2", FINAL: "false"},
        )
        for word in ("You ", "said: ", "where is my refund"):
            await reply.write(word)
        await reply.aclose(attributes={FINAL: "true"})  # as the agent closes its reply
        await send("hm", "TR_nobody", "SG_3", "true")
        left_open = await lp.stream_text(
            topic=TRANSCRIPTION_TOPIC,
            attributes={TRANSCRIBED_TRACK: own.sid, SEGMENT: "SG_4", FINAL: "false"},
        )
        await left_open.write("You said")
        await _until(lambda: log.lines == 4, 15)
        await asyncio.sleep(0.3)  # the open stream's chunk on its way
        await recorder.aclose()
        await recorder.aclose()  # safe twice
    finally:
        await agent.disconnect()
        await customer.aclose()
        log.close()
    lines = [json.loads(x) for x in log.path.read_text(encoding="utf-8").splitlines()]
    assert [(x["track"], x["text"], x["complete"]) for x in lines] == [
        ("customer", "where is", True),
        ("customer", "where is my refund", True),
        ("agent", "You said: where is my refund", True),
        (None, "hm", True),
        ("agent", "You said", False),
    ]
    assert [x["attributes"][FINAL] for x in lines] == ["false", "true", "true", "true", "false"]
    assert all(x["sender"] == "agent-AJ_test" for x in lines)
    assert all(sent_ns < x["opened_ns"] <= x["t_ns"] for x in lines)
