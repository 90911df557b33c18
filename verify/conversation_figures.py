"""The figures of a conversation with an agent under test, from its evidence alone.

Definitions: docs/evidence.md (the conversation's figures) and docs/measurements.md. In short,
on the run's clock: a turn is timed as sent from the Customer's sent frames (the turns file must
agree); the agent's audio is found by `dsp.find_voice` in what the Customer heard and timed by
the same fit over the arrivals as a burst onset (`verify.timing`); a turn's response runs from
the end of its speech as sent (the end of its file in a run made before the speech's bounds were
recorded) to the onset of the first agent audio heard after it, within the answer window; what
the agent understood of each turn and said back comes from the room's transcriptions
(`verify.transcripts`); how the agent took the turns (barge-ins, talk-over) is
`verify.turn_taking`'s.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

import dsp
from verify import evidence as ev
from verify import transcripts, turn_taking
from verify.errors import EvidenceError
from verify.timing import (
    NS_PER_MS,
    NS_PER_S,
    fit_time_ns,
    latency_stats,
    no_frames,
    rounded,
    run_seconds,
    turn_time_ns,
)

FloatArray = npt.NDArray[np.float64]
RunClock = Callable[[float], float | None]  # a monotonic time (ns) as seconds on the run's clock
TURN_TIME_TOLERANCE_NS = 1_000  # the turns file's send times against the sent frames'


def conversation(
    run_dir: Path, manifest: ev.Manifest, missing: list[str], complete: bool, origin: int
) -> dict[str, Any]:
    """The report's `conversation` block of an agent run (see the module docstring)."""
    files = ev.agent_files(manifest)
    assert files is not None, "an agent run"
    agent = manifest.agent
    assert agent is not None  # checked as the manifest was read
    window_s = float(agent["answer_window_s"])
    heard, arrivals = _heard(run_dir, files, missing, complete)
    turns, times = _sent_turns(run_dir, files, missing, complete)
    voice = dsp.find_voice(heard, ev.SAMPLE_RATE)
    segments = voice.segments
    onsets = np.array([s.onset for s in segments], dtype=np.float64)
    offsets = np.array([s.offset for s in segments], dtype=np.float64)
    on_ns = fit_time_ns(arrivals, onsets) if onsets.size else np.zeros(0)
    off_ns = fit_time_ns(arrivals, offsets) if offsets.size else np.zeros(0)
    seen = _customer_events(run_dir, missing)
    left_ns = _left_ns(seen, agent.get("identity"))
    run_s = functools.partial(run_seconds, origin=origin)
    entries, responses = _turns(turns, times, turn_taking.Sounds(on_ns, off_ns), window_s, run_s)
    said = _transcripts(run_dir, files, missing)
    texts = None if turns is None else turns.text
    starts = times.start if times.speech_start is None else times.speech_start
    understood = transcripts.turn_transcripts(said, texts, starts)
    for entry, words in zip(entries, understood, strict=True):
        entry.update(words)
    answered = [e for e in entries if e["state"] == "answered"]
    gaps = [g for e in answered for g in e.pop("_gaps")]
    for e in entries:
        e.pop("_gaps", None)
    return {
        **_agent(agent, files, window_s, left_ns, run_s),
        "frames_received": len(arrivals),
        "samples_received": int(heard.size),
        "threshold_dbfs": rounded(voice.threshold_dbfs, 3),
        "noise_floor_dbfs": rounded(voice.noise_floor_dbfs, 3),
        "heard": bool(segments),
        **_arrival(agent, on_ns, run_s, times.start[0] if times.start.size else math.inf),
        "first_audio": first_audio(
            seen, agent.get("identity"), float(starts[0]) if starts.size else None, on_ns, run_s
        ),
        "turns_sent": len(entries),
        "turns_answered": len(answered),
        "turns_unanswered": len(entries) - len(answered),
        "unanswered": [e["turn"] for e in entries if e["state"] != "answered"],
        "response_ms": latency_stats(np.array(responses, dtype=np.float64)),
        "talk_time_s": rounded(float((offsets - onsets).sum()) / ev.SAMPLE_RATE, 6),
        "segments": [
            {"onset_s": run_s(a), "offset_s": run_s(b), "dips": s.dips}
            for a, b, s in zip(on_ns, off_ns, segments, strict=True)
        ],
        "gaps": len(gaps),
        "gap_max_ms": rounded(max(gaps), 3) if gaps else 0.0,
        "glitches": sum(s.dips for s in segments),
        **turn_taking.summary(entries),
        "turns": entries,
        "transcripts": transcripts.summary(said, entries),
    }


def _transcripts(
    run_dir: Path, files: dict[str, str], missing: list[str]
) -> list[ev.Transcript] | None:
    """The transcriptions the Customer received; None in a run made before they were recorded
    (or with the file missing: that failure is the missing file's)."""
    name = files.get("transcripts")
    if name is None or name in missing:
        return None
    return ev.read_transcripts(run_dir / name)


def _arrival(
    agent: dict[str, Any], on_ns: FloatArray, run_s: RunClock, first_turn_ns: float
) -> dict[str, Any]:
    """How soon the agent came: from the dispatch (CreateDispatch) to its join (`dispatch_ms`),
    from its join to its first audio heard (`greeting_ms`, only when that audio began before the
    Customer's first turn: an agent that waits to be spoken to has no greeting), from the
    dispatch to that audio (`first_audio_ms`), and when that audio came (`first_audio_s`). None
    where a time is not known (a run made before dispatches were timed, an agent never heard)."""
    first = float(on_ns[0]) if on_ns.size else None
    greeting = first if first is not None and first < first_turn_ns else None
    dispatched, joined = _ns(agent.get("dispatched_ns")), _ns(agent.get("joined_ns"))

    def ms(since: float | None, until: float | None) -> float | None:
        return None if since is None or until is None else rounded((until - since) / NS_PER_MS, 4)

    return {
        "first_audio_s": None if first is None else run_s(first),
        "greeting_ms": ms(joined, greeting),
        "dispatch_ms": ms(dispatched, joined),
        "first_audio_ms": ms(dispatched, first),
    }


def _ns(value: Any) -> int | None:
    """A monotonic time of the manifest, None when absent (or not an integer)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _agent(
    agent: dict[str, Any],
    files: dict[str, str],
    window_s: float,
    left_ns: int | None,
    run_s: RunClock,
) -> dict[str, Any]:
    """Who the agent was, its files, and when it joined, left, and its worker lived."""
    joined_ns, worker = agent.get("joined_ns"), agent.get("worker")
    return {
        "agent": agent["name"],
        "identity": agent.get("identity"),
        "kind": agent.get("kind"),
        "dispatch_id": agent.get("dispatch_id"),
        "files": files,
        "answer_window_s": window_s,
        "joined_s": None if joined_ns is None else run_s(joined_ns),
        "left_s": None if left_ns is None else run_s(left_ns),
        "worker": None if worker is None else _worker(worker, run_s),
    }


def _customer_events(run_dir: Path, missing: list[str]) -> list[dict[str, Any]] | None:
    """The Customer's room events, in order; None with the events file missing."""
    if ev.EVENTS in missing:
        return None
    return [e for e in ev.read_events(run_dir / ev.EVENTS) if e.get("agent") == "customer"]


def _left_ns(seen: list[dict[str, Any]] | None, identity: Any) -> int | None:
    """When the Customer saw the agent leave before the Customer itself left, else None."""
    if seen is None or not isinstance(identity, str):
        return None
    for e in seen:
        if e.get("event") == "disconnected":
            return None  # the Customer left first: the agent stayed to the end
        if e.get("event") == "participant_left" and e.get("identity") == identity:
            return _ns(e.get("t_ns"))
    return None


def first_audio(
    seen: list[dict[str, Any]] | None,
    identity: Any,
    speech_ns: float | None,
    on_ns: FloatArray,
    run_s: RunClock,
) -> dict[str, Any]:
    """From each side's publication to its first audio the other side could hear.

    `customer`: from the Customer's track published to the first of its speech the agent could
    hear: the later of the first turn's speech as sent (`speech_s`) and the server's word that
    the agent subscribed to the track (`subscribed_s`); `lost_ms` is the speech sent before that
    word, which no one heard. `agent`: from the agent's track published, as the Customer learnt
    of it, to the onset of its first audio heard. Each figure None where a time is not known (a
    run made before subscriptions were logged, an agent never heard)."""

    def first(event: str, **fields: Any) -> int | None:
        for e in seen or ():
            if e.get("event") == event and all(e.get(k) == v for k, v in fields.items()):
                return _ns(e.get("t_ns"))
        return None

    def ms(since: float | None, until: float | None) -> float | None:
        return None if since is None or until is None else rounded((until - since) / NS_PER_MS, 4)

    def s(t: float | None) -> float | None:
        return None if t is None else run_s(t)

    published, subscribed = first("track_published", local=True), first("local_track_subscribed")
    audible = None if subscribed is None or speech_ns is None else max(subscribed, speech_ns)
    agent_published = (
        first("track_published", identity=identity) if isinstance(identity, str) else None
    )
    heard = float(on_ns[0]) if on_ns.size else None
    return {
        "customer": {
            "published_s": s(published),
            "subscribed_s": s(subscribed),
            "speech_s": s(speech_ns),
            "first_audio_ms": ms(published, audible),
            "lost_ms": None if audible is None else ms(speech_ns, audible),
        },
        "agent": {
            "published_s": s(agent_published),
            "heard_s": s(heard),
            "first_audio_ms": ms(agent_published, heard),
        },
    }


def _heard(
    run_dir: Path, files: dict[str, str], missing: list[str], complete: bool
) -> tuple[npt.NDArray[np.int16], ev.Timing]:
    """What the Customer heard and when each frame arrived, cut to what both files cover."""
    samples = (
        ev.read_wav(run_dir / files["wav"])
        if files["wav"] not in missing
        else np.zeros(0, np.int16)
    )
    arrivals = (
        ev.read_timing(run_dir / files["arrivals"], partial_tail=not complete)
        if files["arrivals"] not in missing
        else no_frames()
    )
    strict = complete and files["wav"] not in missing and files["arrivals"] not in missing
    arrivals = ev.common_part(
        samples.size, arrivals, strict=strict, wav=files["wav"], timing=files["arrivals"]
    )
    return samples[: arrivals.total_samples], arrivals


@dataclasses.dataclass(frozen=True)
class TurnTimes:
    """When each turn's file, and its speech, started and ended as sent (ns; the speech's None in
    a turns file written before it was recorded)."""

    start: FloatArray
    end: FloatArray
    speech_start: FloatArray | None = None
    speech_end: FloatArray | None = None

    @property
    def heard_from(self) -> FloatArray:
        """Where each turn's response is measured from: the end of its speech (of its file in
        an older run)."""
        return self.end if self.speech_end is None else self.speech_end


def _sent_turns(
    run_dir: Path, files: dict[str, str], missing: list[str], complete: bool
) -> tuple[ev.Turns | None, TurnTimes]:
    """The turns the Customer said (None: the file is missing), and when each started and ended
    as sent."""
    sent = (
        ev.read_timing(run_dir / files["sent"], partial_tail=not complete)
        if files["sent"] not in missing
        else None
    )
    turns = (
        ev.read_turns(run_dir / files["utterances"]) if files["utterances"] not in missing else None
    )
    return turns, _turn_times(turns, sent, files)


def _turn_times(turns: ev.Turns | None, sent: ev.Timing | None, files: dict[str, str]) -> TurnTimes:
    """Each turn's start and end (its file's, its speech's) as sent, from the sent frames; the
    turns file must agree."""
    if turns is None or not len(turns):
        return TurnTimes(np.zeros(0), np.zeros(0))
    if sent is None or turns.start_sample[-1] + turns.samples[-1] > sent.total_samples:
        raise EvidenceError(
            f"{files['utterances']} lists turns that {files['sent']} does not cover, "
            "expected every listed turn to be sent"
        )
    spans = [("sent_start_ns", "sent_end_ns", turns.start_sample, turns.samples)]
    if turns.speech_start_sample is not None and turns.speech_samples is not None:
        spans.append(
            ("speech_start_ns", "speech_end_ns", turns.speech_start_sample, turns.speech_samples)
        )
    times = []
    for start_name, end_name, first, length in spans:
        start = turn_time_ns(sent, first, end=False)
        end = turn_time_ns(sent, first + length, end=True)
        for name, found in ((start_name, start), (end_name, end)):
            _agree(files, name, found, getattr(turns, name))
        times += [start, end]
    return TurnTimes(*times)


def _agree(files: dict[str, str], name: str, found: FloatArray, listed: ev.IntArray) -> None:
    """The turns file's `name` column is what the sent frames give, to TURN_TIME_TOLERANCE_NS."""
    bad = np.abs(found - listed) > TURN_TIME_TOLERANCE_NS
    if bad.any():
        i = int(np.argmax(bad))
        raise EvidenceError(
            f"{files['utterances']} turn {i} has {name} {int(listed[i])}, but "
            f"{files['sent']} gives {found[i]:.0f}, expected the same time"
        )


def _turns(
    turns: ev.Turns | None,
    times: TurnTimes,
    sounds: turn_taking.Sounds,
    window_s: float,
    run_s: RunClock,
) -> tuple[list[dict[str, Any]], list[float]]:
    """One entry per turn: when it was sent, how it was said, whether and how fast it was
    answered: by the first agent audio heard after the end of its speech, within the answer
    window (an answer may start while the file's trailing silence still plays); and how the
    agent took the turn (`verify.turn_taking`)."""
    if turns is None:
        return [], []
    speech = times.speech_start if times.speech_start is not None else times.start
    entries: list[dict[str, Any]] = []
    responses: list[float] = []
    for k in range(len(turns)):
        end = times.heard_from[k]
        how = turns.how[k] if turns.how else ev.HowSaid()
        entry: dict[str, Any] = {
            "turn": int(turns.turn[k]),
            "source": turns.source[k],
            "sha256": turns.sha256[k],
            "text": (turns.text[k] or None) if turns.text is not None else None,
            "sent_start_s": run_s(times.start[k]),
            "sent_end_s": run_s(times.end[k]),
            "speech_start_s": None if times.speech_start is None else run_s(speech[k]),
            "speech_end_s": None if times.speech_end is None else run_s(end),
            **_how_said(how, run_s),
            "state": "unanswered",
            "_gaps": [],
        }
        next_speech = speech[k + 1] if k + 1 < len(turns) else math.inf
        answer = _answer(end, next_speech, sounds, window_s * NS_PER_S)
        if answer is not None:
            first, last = answer
            response = (sounds.on_ns[first] - end) / NS_PER_MS
            responses.append(float(response))
            pauses = (sounds.on_ns[first + 1 : last + 1] - sounds.off_ns[first:last]) / NS_PER_MS
            entry.update(
                state="answered",
                response_ms=rounded(float(response), 4),
                answer_start_s=run_s(sounds.on_ns[first]),
                answer_end_s=run_s(sounds.off_ns[last]),
                _gaps=[float(p) for p in pauses],
            )
        entry.update(turn_taking.turn_figures(how, (speech[k], end), sounds, answer is not None))
        entries.append(entry)
    return entries, responses


def _answer(
    end: float, next_speech: float, sounds: turn_taking.Sounds, window_ns: float
) -> tuple[int, int] | None:
    """The answer to a turn whose speech ended at `end`: its first and last sound (the first
    heard after `end` within the window, and those that follow it until the next turn's speech
    starts); None when there is none."""
    on_ns = sounds.on_ns
    after = np.flatnonzero(on_ns > end)
    if not after.size or on_ns[after[0]] > end + window_ns:
        return None
    first = last = int(after[0])
    while last + 1 < on_ns.size and on_ns[last + 1] < next_speech:
        last += 1
    return first, last


def _how_said(how: ev.HowSaid, run_s: RunClock) -> dict[str, Any]:
    """How the turn was said (its words aside): its background noise, the phone line, and when
    the Customer heard the answer it barged into."""
    heard = how.barge_in_heard_ns
    return {
        "noise": how.noise,
        "snr_db": how.snr_db,
        "phone": how.phone,
        "barge_in_heard_s": None if heard is None else run_s(heard),
    }


def _worker(worker: dict[str, Any], run_s: RunClock) -> dict[str, Any]:
    """The worker's life on the run's clock: registered, exited on its own (a crash), or
    stopped by the run."""

    def at(key: str) -> float | None:
        value = _ns(worker.get(key))
        return None if value is None else run_s(value)

    return {
        "log": worker.get("log"),
        "registered_s": at("registered_ns"),
        "exited_s": at("exited_ns"),
        "exit_code": worker.get("exit_code"),
        "stopped_by": worker.get("stopped_by"),
        "scheduling": _scheduling(worker.get("scheduling")),
    }


def _scheduling(value: Any) -> dict[str, Any] | None:
    """How the worker's processes were scheduled while the Customer talked (`policies` seen,
    most `processes` at once), as `pipeline.recording.host` noted it; None when not noted."""
    if not isinstance(value, dict):
        return None
    policies, processes = value.get("policies"), value.get("processes")
    if not isinstance(policies, list) or not all(isinstance(p, str) for p in policies):
        return None
    if not isinstance(processes, int) or isinstance(processes, bool):
        return None
    return {"policies": policies, "processes": processes}
