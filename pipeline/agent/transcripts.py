"""The room's transcriptions as the Customer receives them: `customer.transcripts.jsonl`.

livekit-agents publishes what its STT understood of the caller, and what its agent says, as text
streams on `lk.transcription` (`echoproof.contract.TRANSCRIPTION_TOPIC`): the caller's words in
two streams per utterance (an interim one, then the final one, with the same segment id), the
agent's reply in one stream written word by word as it is spoken (cut where a barge-in stopped
it). Every stream's sender is the agent; the track it transcribes (`lk.transcribed_track_id`)
tells whose words they are.

`TranscriptRecorder.handler` is the Customer's text stream handler: it reads each stream to its
end in a task of its own and writes one line per stream (`evidence.TranscriptLog`): when its
header and its end arrived, on the run's clock, its sender, whose track it transcribes, its
attributes and its text. `aclose()` (safe twice) ends the streams still open and writes them as
they are, `complete` false.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable

from livekit import rtc
from loguru import logger

from echoproof.aiotasks import cancel_and_wait
from echoproof.contract import TRANSCRIBED_TRACK, TRANSCRIPT_TRACKS
from pipeline.recording.evidence import TranscriptLog
from pipeline.speaker import Speaker

# Whose track a stream transcribes ("customer", "agent" or None), from the track id it names
# (None: it names none) and its sender's identity.
Whose = Callable[[str | None, str], str | None]


def whose_track(customer: Speaker) -> Whose:
    """Whose words a stream holds, as the Customer `customer` tells: its own (its track) or the
    agent's (a track of the stream's sender, or of the agent it hears); None: neither."""
    mine, agents = TRANSCRIPT_TRACKS

    def whose(track_id: str | None, sender: str) -> str | None:
        owner = None if track_id is None else customer.publisher_of(track_id)
        if owner is None:
            return None
        if owner == customer.identity:
            return mine
        return agents if owner in (sender, customer.peer_identity) else None

    return whose


@dataclasses.dataclass
class _Stream:
    """One text stream being read."""

    reader: rtc.TextStreamReader
    sender: str
    opened_ns: int
    text: str = ""


class TranscriptRecorder:
    """Every `lk.transcription` stream the Customer receives, one line each in `log`."""

    def __init__(self, log: TranscriptLog, whose: Whose) -> None:
        self._log = log
        self._whose = whose
        self._reading: dict[asyncio.Task[None], _Stream] = {}
        self._closed = False

    def handler(self, reader: rtc.TextStreamReader, sender: str) -> None:
        """The room's text stream handler: read this stream in a task of its own."""
        stream = _Stream(reader, sender, time.monotonic_ns())
        if self._closed:
            reader.close()
            return
        task = asyncio.create_task(self._read(stream), name=f"transcript-{reader.info.stream_id}")
        self._reading[task] = stream
        task.add_done_callback(self._reading.pop)

    async def _read(self, stream: _Stream) -> None:
        try:
            async for chunk in stream.reader:
                stream.text += chunk
        except rtc.StreamError as exc:  # the sender aborted it, or the room went away
            logger.debug("transcription stream from {} ended early: {}", stream.sender, exc)
            self._write(stream, complete=False)
            return
        self._write(stream, complete=True)

    def _write(self, stream: _Stream, *, complete: bool) -> None:
        attributes = dict(stream.reader.info.attributes or {})
        self._log.write(
            t_ns=time.monotonic_ns(),
            opened_ns=stream.opened_ns,
            sender=stream.sender,
            track=self._whose(attributes.get(TRANSCRIBED_TRACK), stream.sender),
            attributes=attributes,
            text=stream.text,
            complete=complete,
        )

    async def aclose(self) -> None:
        """End the streams still being read and write each as it is; safe to call twice."""
        self._closed = True
        for task, stream in list(self._reading.items()):
            await cancel_and_wait(task)
            if task.cancelled():  # else it ended first and wrote its line itself
                stream.reader.close()
                self._write(stream, complete=False)
