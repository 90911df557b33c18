"""A LiveKit voice agent that runs offline: livekit-agents' ``AgentSession`` with Silero VAD, a
small PocketSphinx STT and eSpeak NG speech, answering each thing it hears with "You said: ...".

Run it as any livekit-agents worker, in a Python that has livekit-agents, the Silero plugin and
pocketsphinx (``nox -s agent-env`` makes one: ``.nox/agent-env/bin/python``), on a host with
``espeak-ng`` (Debian's package)::

    LIVEKIT_URL=ws://127.0.0.1:7880 LIVEKIT_API_KEY=devkey LIVEKIT_API_SECRET=secret \\
        .nox/agent-env/bin/python examples/voice_agent.py start     # or `dev`

It registers as ``echoproof-voice`` (``LIVEKIT_AGENT_NAME``) and waits to be dispatched. Nothing
is downloaded and no key is needed but the server's: every model ships inside its package.

- **Hearing**: Silero VAD (its minimum silence 0.3 s) finds each utterance of the caller;
  ``SphinxSTT`` resamples it to 16 kHz (``rtc.AudioResampler``, high quality: linear
  resampling cost accuracy) and has ``examples/voice_stt.py`` decode it in a process of its own
  (pocketsphinx holds the GIL for a whole decode), with a language model and dictionary made
  from the sentences it expects: ``ECHOPROOF_STT_CORPUS`` (a file, one sentence a line; default
  ``voice_stt.SENTENCES``).
- **Turns**: the session's turn detection is the VAD (endpointing 0.3 s after the speech), its
  interruptions too (``mode="vad"``: "adaptive" calls a hosted model), a barge-in of 0.3 s stops
  its speech, at once from its first word (``aec_warmup_duration=None``).
- **Answering**: no LLM: each final transcript is answered with ``You said: <transcript>``,
  spoken by ``EspeakTTS`` (``espeak-ng --stdout``, 22.05 kHz).
- **Transcriptions**: published as livekit-agents does, text streams on ``lk.transcription``:
  the caller's words (an interim and a final stream per utterance) and the agent's reply (word
  by word as it plays), told apart by ``lk.transcribed_track_id``.

Its log (logger ``echoproof.voice_agent``, INFO), times from ``time.monotonic_ns()`` (the host's
CLOCK_MONOTONIC, the clock of a harness on the same host)::

    heard: ended_ns=... text='...'              each final transcript, as the turn ends
    speaking: started_ns=...                    its audio output began to play (an answer)
    barge-in: heard_ns=... stopped_ns=... played_s=...
        the caller spoke over it (heard: when its VAD noticed) and it stopped its audio

Switches, for tests of what a harness sees of a worse agent:

- ``ECHOPROOF_ALLOW_INTERRUPTIONS=0``: the session does not allow interruptions (it talks on, and
  drops what the caller says meanwhile).
- ``ECHOPROOF_STT_SKIP_MS=N``: a fault: its STT ignores the first N ms of each utterance's
  speech, so its transcripts lack the first words.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import select
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import voice_stt  # examples/voice_stt.py, beside this file
from livekit import rtc
from livekit.agents import (
    DEFAULT_API_CONNECT_OPTIONS,
    NOT_GIVEN,
    Agent,
    AgentServer,
    AgentSession,
    AgentStateChangedEvent,
    APIConnectOptions,
    APIError,
    AutoSubscribe,
    CloseEvent,
    JobContext,
    JobProcess,
    NotGivenOr,
    UserStateChangedEvent,
    cli,
    llm,
    stt,
    tts,
    utils,
)
from livekit.agents.voice.io import PlaybackFinishedEvent
from livekit.plugins import silero

log = logging.getLogger("echoproof.voice_agent")

ESPEAK = "espeak-ng"
ESPEAK_RATE = 22_050  # eSpeak NG's output, Hz
STT_START_S = 10.0  # its decoder process loads in about 0.1 s


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        return float(raw) if raw.strip() else default
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not a number") from None


@dataclass(frozen=True)
class Settings:
    """What the environment asks of the agent (see the module's docstring)."""

    agent_name: str
    corpus: Path | None
    allow_interruptions: bool
    stt_skip_ms: float
    min_silence_s: float = 0.3  # Silero: silence that ends an utterance
    endpointing_s: float = 0.3  # the turn ends this long after the speech
    min_interruption_s: float = 0.3  # the caller's speech that stops the agent's

    @classmethod
    def from_env(cls) -> Settings:
        allow = os.environ.get("ECHOPROOF_ALLOW_INTERRUPTIONS", "1").strip()
        if allow not in ("0", "1"):
            raise SystemExit(f"ECHOPROOF_ALLOW_INTERRUPTIONS={allow!r}: expected 0 or 1")
        corpus = os.environ.get("ECHOPROOF_STT_CORPUS", "").strip()
        if corpus and not Path(corpus).is_file():
            raise SystemExit(f"ECHOPROOF_STT_CORPUS={corpus!r} is not a file")
        return cls(
            agent_name=os.environ.get("LIVEKIT_AGENT_NAME", "echoproof-voice"),
            corpus=Path(corpus) if corpus else None,
            allow_interruptions=allow == "1",
            stt_skip_ms=_env_float("ECHOPROOF_STT_SKIP_MS", 0.0),
        )


SETTINGS = Settings.from_env()


class SphinxDecoder:
    """The decoder process (examples/voice_stt.py), one per job process: `decode` sends it
    one utterance and waits for its words in a thread, so the event loop runs on."""

    def __init__(self, corpus: Path | None) -> None:
        script = Path(voice_stt.__file__).resolve()
        args = [sys.executable, str(script), *([str(corpus)] if corpus else [])]
        # its stdin is ours alone: it ends when this process does, whatever the cause
        self._proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._lock = threading.Lock()
        assert self._proc.stdout is not None
        ready = self._read_line(STT_START_S)
        if ready != voice_stt.READY:
            raise RuntimeError(
                f"the STT process ({script.name}) said {ready!r}, expected {voice_stt.READY!r}"
            )

    def _read_line(self, timeout_s: float | None = None) -> str:
        assert self._proc.stdout is not None
        if timeout_s is not None:
            readable, _, _ = select.select([self._proc.stdout], [], [], timeout_s)
            if not readable:
                raise RuntimeError(f"the STT process did not start within {timeout_s:g} s")
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the STT process exited (code {self._proc.poll()})")
        return line.decode("utf-8").strip()

    def decode(self, pcm: bytes) -> str:
        """The words in one utterance of 16 kHz mono int16 PCM (blocking: call in a thread)."""
        with self._lock:
            assert self._proc.stdin is not None
            self._proc.stdin.write(voice_stt.LENGTH.pack(len(pcm)) + pcm)
            self._proc.stdin.flush()
            return self._read_line()

    def close(self) -> None:
        """End the process (it exits at the end of its input)."""
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self._proc.kill()


def speech_onset(pcm: np.ndarray, rate: int) -> int:
    """The first 10 ms block within 30 dB of the utterance's loudest: where its speech starts
    (the VAD hands over its utterances with 0.5 s of what came before)."""
    block = rate // 100
    n = pcm.size // block
    if n == 0:
        return 0
    power = np.mean(np.square(pcm[: n * block].reshape(n, block), dtype=np.float64), axis=1)
    return int(np.argmax(power >= power.max() * 1e-3)) * block


class SphinxSTT(stt.STT):
    """Recognises whole utterances (the session wraps it in a VAD-driven stream)."""

    def __init__(self, decoder: SphinxDecoder, skip_ms: float) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))
        self._decoder = decoder
        self._skip_ms = skip_ms

    @property
    def model(self) -> str:
        return "pocketsphinx-en-us-corpus"

    @property
    def provider(self) -> str:
        return "pocketsphinx"

    async def _recognize_impl(
        self,
        buffer: utils.AudioBuffer,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> stt.SpeechEvent:
        frame = utils.merge_frames(buffer)
        resampler = rtc.AudioResampler(
            input_rate=frame.sample_rate,
            output_rate=voice_stt.SAMPLE_RATE,
            num_channels=frame.num_channels,
            quality=rtc.AudioResamplerQuality.HIGH,
        )
        frames = [*resampler.push(frame), *resampler.flush()]
        pcm = np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in frames])
        if frame.num_channels > 1:
            pcm = pcm[:: frame.num_channels]
        if self._skip_ms > 0:  # the fault: the first words are lost
            skip = speech_onset(pcm, voice_stt.SAMPLE_RATE)
            pcm = pcm[skip + round(self._skip_ms * voice_stt.SAMPLE_RATE / 1000) :]
        text = await asyncio.to_thread(self._decoder.decode, pcm.tobytes()) if pcm.size else ""
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            request_id=utils.shortuuid("STT_"),
            alternatives=[stt.SpeechData(language="en", text=text)],
        )


def _wav_pcm(wav: bytes) -> tuple[int, bytes]:
    """The sample rate and PCM data of eSpeak's WAV output (it may leave the sizes unset)."""
    if wav[:4] != b"RIFF" or wav[8:12] != b"WAVE":
        raise APIError(f"{ESPEAK} wrote {wav[:12]!r}, expected a RIFF WAVE header")
    at, rate = 12, 0
    while at + 8 <= len(wav):
        chunk, size = wav[at : at + 4], struct.unpack("<I", wav[at + 4 : at + 8])[0]
        if chunk == b"fmt ":
            rate = struct.unpack("<I", wav[at + 12 : at + 16])[0]
        elif chunk == b"data":
            return rate, wav[at + 8 :]  # to the end: a streamed WAV's size may read 0 or max
        at += 8 + size + (size & 1)
    raise APIError(f"{ESPEAK} wrote {len(wav)} bytes of WAV without audio data")


class EspeakTTS(tts.TTS):
    """eSpeak NG: one `espeak-ng --stdout` per sentence."""

    def __init__(self, voice: str = "en-us") -> None:
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=False),
            sample_rate=ESPEAK_RATE,
            num_channels=1,
        )
        self.voice = voice

    @property
    def model(self) -> str:
        return self.voice

    @property
    def provider(self) -> str:
        return ESPEAK

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        return _EspeakStream(tts=self, input_text=text, conn_options=conn_options)


class _EspeakStream(tts.ChunkedStream):
    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        engine = self._tts
        assert isinstance(engine, EspeakTTS)
        proc = await asyncio.create_subprocess_exec(
            ESPEAK, "--stdout", "--stdin", "-v", engine.voice,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        wav, err = await proc.communicate(self.input_text.encode("utf-8"))
        if proc.returncode != 0:
            raise APIError(f"{ESPEAK} exited with {proc.returncode}: {err.decode()[:200]}")
        rate, pcm = _wav_pcm(wav)
        if rate != ESPEAK_RATE:
            raise APIError(f"{ESPEAK} wrote {rate} Hz audio, expected {ESPEAK_RATE} Hz")
        output_emitter.initialize(
            request_id=utils.shortuuid("TTS_"),
            sample_rate=ESPEAK_RATE,
            num_channels=1,
            mime_type="audio/pcm",
        )
        output_emitter.push(pcm[: len(pcm) // 2 * 2])
        output_emitter.flush()


class EchoAgent(Agent):
    """Answers every final transcript with what it understood."""

    def __init__(self) -> None:
        super().__init__(instructions="Repeat what the caller said.")

    async def on_user_turn_completed(
        self, turn_ctx: llm.ChatContext, new_message: llm.ChatMessage
    ) -> None:
        text = (new_message.text_content or "").strip()
        log.info("heard: ended_ns=%d text=%r", time.monotonic_ns(), text)
        if text:
            self.session.say(f"You said: {text}")


def prewarm(proc: JobProcess) -> None:
    """Each job process loads its models before a job comes: the VAD, and the STT's process."""
    s = SETTINGS
    proc.userdata["vad"] = silero.VAD.load(min_silence_duration=s.min_silence_s)
    proc.userdata["decoder"] = SphinxDecoder(s.corpus)


server = AgentServer(
    setup_fnc=prewarm,
    # one spare job process, not one per core: each holds its models (about 350 MB)
    num_idle_processes=1,
    # A few conversations are no load worth refusing: never refuse a job, nor report a load
    # that makes the server pass this worker over, because a shared machine is busy.
    load_threshold=math.inf,
    load_fnc=lambda: 0.0,
    # its health-check HTTP server on a free loopback port, so that several workers fit a host
    host="127.0.0.1",
    port=0,
)


def _session(ctx: JobContext, s: Settings) -> AgentSession:
    """The voice pipeline: VAD, STT and TTS as above, no LLM, turn-taking by the VAD."""
    decoder = ctx.proc.userdata["decoder"]
    return AgentSession(
        vad=ctx.proc.userdata["vad"],
        stt=SphinxSTT(decoder, s.stt_skip_ms),
        tts=EspeakTTS(),
        turn_handling={
            "turn_detection": "vad",
            "endpointing": {"min_delay": s.endpointing_s},
            "interruption": {
                "enabled": s.allow_interruptions,
                "mode": "vad",
                "min_duration": s.min_interruption_s,
                # an interruption stops the speech for good: no pause and resume
                "resume_false_interruption": False,
                "false_interruption_timeout": None,
            },
            "preemptive_generation": {"enabled": False},
        },
        aec_warmup_duration=None,  # a barge-in counts from the agent's first word
        user_away_timeout=None,
    )


@server.rtc_session(agent_name=SETTINGS.agent_name)
async def entrypoint(ctx: JobContext) -> None:
    """Join the room and talk with its caller until the session closes, then end the job."""
    s = SETTINGS
    await ctx.connect(auto_subscribe=AutoSubscribe.AUDIO_ONLY)
    session = _session(ctx, s)
    heard_ns: list[int] = []  # when the caller started speaking over the agent

    def _on_user_state(ev: UserStateChangedEvent) -> None:
        if ev.new_state == "speaking" and session.agent_state == "speaking":
            heard_ns.append(time.monotonic_ns())

    def _on_agent_state(ev: AgentStateChangedEvent) -> None:
        if ev.new_state == "speaking":  # a harness times one transport leg against this
            log.info("speaking: started_ns=%d", time.monotonic_ns())

    def _on_playback_finished(ev: PlaybackFinishedEvent) -> None:
        if ev.interrupted:
            log.info(
                "barge-in: heard_ns=%s stopped_ns=%d played_s=%.3f",
                heard_ns[-1] if heard_ns else "none",
                time.monotonic_ns(),
                ev.playback_position,
            )

    def _on_close(ev: CloseEvent) -> None:
        # a stopped worker waits for its jobs: the job ends with its session
        ctx.shutdown(reason=f"session closed: {ev.reason}")

    session.on("user_state_changed", _on_user_state)
    session.on("agent_state_changed", _on_agent_state)
    session.on("close", _on_close)
    await session.start(agent=EchoAgent(), room=ctx.room, record=False)
    if session.output.audio is not None:
        session.output.audio.on("playback_finished", _on_playback_finished)
    log.info(
        "in room %s as %s: interruptions %s, stt skip %g ms",
        ctx.room.name,
        ctx.room.local_participant.identity,
        "allowed" if s.allow_interruptions else "not allowed",
        s.stt_skip_ms,
    )


if __name__ == "__main__":
    cli.run_app(server)
