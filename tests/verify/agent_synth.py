"""Synthetic run folders of a conversation with an agent under test, as the pipeline writes them.

The Customer says `turns` tone utterances (each file ending in `trail_s` of silence); the agent
answers each (unless listed in `silent`) with a tone `reply_ms` after the end of its speech,
heard `transport_ms` later; the Customer's frames leave every 10 ms on a clock starting at `T0`,
the heard frames arrive on the same clock.

A caller's script: `barge_in` turns start `after_ms` after the answer to the turn before was
heard to begin, and the agent's answer then ends `stops_after_ms` after the interrupting speech
began (None: it plays on to its end); `talk_over` turns are answered that many ms before their
speech ends; `how` gives turns their noise, SNR, phone line and words.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np

from echoproof import contract as c
from echoproof.contract import (
    FRAME_SAMPLES,
    TIMING_HEADER,
    UTTERANCES_FILE_COLUMNS,
    UTTERANCES_HEADER,
    UTTERANCES_SPEECH_COLUMNS,
    agent_files,
)

RATE = c.SAMPLE_RATE
T0 = 1_000_000_000_000  # the run clock's zero, ns


@dataclasses.dataclass
class AgentSpec:
    """One synthetic agent run."""

    duration_s: float = 12.0
    utterance_s: float = 0.5
    window_s: float = 2.0
    reply_ms: float = 300.0
    transport_ms: float = 40.0
    answer_s: float = 0.4
    silent: tuple[int, ...] = ()
    joined_s: float = 0.5
    greeting_s: float | None = None  # the agent greets this long after joining
    dropout_in_answer: int | None = None  # a 10 ms hole in this turn's answer (a glitch)
    exited_s: float | None = None  # the worker exited on its own here
    noise: float = 3.0
    trail_s: float = 0.0  # silence at the end of each utterance's file
    file_columns_only: bool = False  # the turns file as written before the speech's bounds
    dispatched_s: float | None = 0.2  # CreateDispatch; None: a run made before it was timed
    agent_stall_at_s: float | None = None  # host.csv: the agent's worker waited 400 ms here
    fleet: str | None = None  # the id of the fleet the run belongs to (`--pairs N`)
    speech_columns_only: bool = False  # the turns file as written before a caller's script
    barge_in: dict[int, float] = dataclasses.field(default_factory=dict)  # turn: after_ms
    stops_after_ms: float | None = None  # an interrupted answer ends this long after the speech
    talk_over: dict[int, float] = dataclasses.field(default_factory=dict)  # turn: ms early
    how: dict[int, tuple[str, float, bool, str]] = dataclasses.field(default_factory=dict)
    # the words of each turn (cycled; the turns file's `text`), and the agent's transcript of
    # each turn (cycled; None: no transcript of that turn), as the Customer received them
    texts: tuple[str, ...] = ()
    understood: tuple[str | None, ...] = ()
    transcripts: bool = True  # False: a run made before transcriptions were recorded
    # the server's word that the agent subscribed to the Customer's track; None: a run made
    # before subscriptions were logged
    subscribed_s: float | None = 0.6


def _write_wav(path: Path, x: np.ndarray) -> None:
    import struct

    data = x.astype("<i2").tobytes()
    fmt = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, RATE, RATE * 2, 2, 16)
    head = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE" + fmt
    path.write_bytes(head + b"data" + struct.pack("<I", len(data)) + data)


def _tone(n: int, hz: float, amp: float = 8000.0) -> np.ndarray:
    return amp * np.sin(2 * np.pi * hz * np.arange(n) / RATE)


def make_agent_run(root: Path, spec: AgentSpec, name: str = "20261130T120000Z-0a0b0c0d") -> Path:
    """Write the run folder and return it (not yet verified)."""
    run = root / name
    run.mkdir(parents=True)
    files = agent_files(worker_log=spec.exited_s is not None)
    if not spec.transcripts:
        del files["transcripts"]
    rng = np.random.default_rng(7)
    n_frames = round(spec.duration_s * 100)
    total = n_frames * FRAME_SAMPLES
    # the Customer's turns, as pipeline.agent.utterances schedules them
    voiced = round(spec.utterance_s * RATE)
    utt = voiced + round(spec.trail_s * RATE)
    window = round(spec.window_s * RATE)
    wave = np.round(_tone(voiced, 440.0)).astype(np.int16)
    sha = hashlib.sha256(wave.tobytes()).hexdigest()
    sent_t = T0 + np.arange(n_frames, dtype=np.int64) * 10_000_000 + 137

    def sent_at(pos: int, end: bool) -> int:
        f = (pos - 1 if end else pos) // FRAME_SAMPLES
        return int(sent_t[f] + round((pos - f * FRAME_SAMPLES) * 1e9 / RATE))

    def answer_on(end_ns: int, k: int) -> float:
        if k in spec.talk_over:
            return end_ns - spec.talk_over[k] * 1e6
        return end_ns + (spec.reply_ms + spec.transport_ms) * 1e6

    starts: list[int] = []
    heard_ns: list[float | None] = []
    at = window
    while True:
        k = len(starts)
        barged = None
        if k in spec.barge_in and k >= 1 and k - 1 not in spec.silent:
            barged = answer_on(sent_at(starts[-1] + voiced, True), k - 1)
            due = barged + spec.barge_in[k] * 1e6
            at = max(int(np.ceil((due - T0 - 137) * RATE / 1e9)), starts[-1] + utt)
        if at + utt + window > total:
            break
        starts.append(at)
        heard_ns.append(barged)
        at = -(-(at + utt + window) // FRAME_SAMPLES) * FRAME_SAMPLES

    with (run / files["sent"]).open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(TIMING_HEADER)
        for i in range(n_frames):
            w.writerow((i, i * FRAME_SAMPLES, FRAME_SAMPLES, int(sent_t[i])))
    columns = len(UTTERANCES_HEADER)
    if spec.file_columns_only:
        columns = UTTERANCES_FILE_COLUMNS
    elif spec.speech_columns_only:
        columns = UTTERANCES_SPEECH_COLUMNS
    with (run / files["utterances"]).open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(UTTERANCES_HEADER[:columns])
        for k, s in enumerate(starts):
            row = (k, "tone 440 Hz", sha, s, utt, sent_at(s, False), sent_at(s + utt, True))
            speech = (s, voiced, sent_at(s, False), sent_at(s + voiced, True))
            kind, snr, phone, text = spec.how.get(k, ("", 0.0, False, ""))
            if not text and spec.texts:
                text = spec.texts[k % len(spec.texts)]
            how = (
                spec.barge_in.get(k, ""),
                "" if heard_ns[k] is None else round(heard_ns[k]),
                kind,
                snr if kind else "",
                int(phone),
                text,
            )
            w.writerow((*row, *speech, *how)[:columns])
    if spec.transcripts:
        lines = []
        for k, s in enumerate(starts):
            heard = spec.understood[k % len(spec.understood)] if spec.understood else None
            end_ns = sent_at(s + voiced, True)
            if heard is not None:  # an interim transcript, then the final one, of its segment
                for final, after_ms in ((False, 350), (True, 380)):
                    line = _transcript(end_ns, after_ms, "customer", f"SG_c{k}", heard, final)
                    lines.append(line)
            if k not in spec.silent:
                answer = f"You said: {heard or ''}"
                lines.append(_transcript(end_ns, spec.reply_ms, "agent", f"SG_a{k}", answer, True))
        lines.sort(key=lambda x: x["t_ns"])
        text = "".join(json.dumps(x, sort_keys=True) + "\n" for x in lines)
        (run / files["transcripts"]).write_text(text, encoding="utf-8")
    # what the Customer heard: its recording starts at the run clock's T0 + 0.3 s
    rec0 = T0 + 300_000_000
    heard = rng.standard_normal(total) * spec.noise
    ans = round(spec.answer_s * RATE)

    def put(t_ns: float, n: int, hole: bool = False) -> None:
        pos = (t_ns - rec0) * RATE / 1e9
        i = int(np.ceil(pos))
        tone = 6000 * np.sin(2 * np.pi * 550 * (np.arange(i, i + n) - pos) / RATE)
        if hole:
            tone[n // 2 : n // 2 + 480] = 0
        stop = min(i + n, total)
        heard[i:stop] += tone[: stop - i]

    if spec.greeting_s is not None:
        put(T0 + (spec.joined_s + spec.greeting_s) * 1e9, ans)
    for k, s in enumerate(starts):
        end_ns = sent_at(s + voiced, True)
        if k in spec.silent or (spec.exited_s is not None and end_ns > T0 + spec.exited_s * 1e9):
            continue
        on_ns, length = answer_on(end_ns, k), ans
        if k + 1 < len(starts) and heard_ns[k + 1] is not None and spec.stops_after_ms is not None:
            stop_ns = sent_at(starts[k + 1], False) + spec.stops_after_ms * 1e6
            length = min(ans, round((stop_ns - on_ns) * RATE / 1e9))
        put(on_ns, length, k == spec.dropout_in_answer)
    _write_wav(run / files["wav"], np.round(heard).astype(np.int16))
    with (run / files["arrivals"]).open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(TIMING_HEADER)
        for i in range(n_frames):
            jitter = int(rng.integers(0, 300_000))
            w.writerow((i, i * FRAME_SAMPLES, FRAME_SAMPLES, rec0 + i * 10_000_000 + jitter))
    joined_ns = T0 + round(spec.joined_s * 1e9)
    events = [
        {"t_ns": T0, "agent": "customer", "event": "connected"},
        {
            "t_ns": joined_ns,
            "agent": "customer",
            "event": "participant_joined",
            "identity": "agent-AJ_synth",
            "kind": "AGENT",
        },
        {"t_ns": T0 + 100_000_000, "agent": "customer", "event": "track_published", "local": True},
        {
            "t_ns": joined_ns + 50_000_000,
            "agent": "customer",
            "event": "track_published",
            "identity": "agent-AJ_synth",
        },
    ]
    if spec.subscribed_s is not None:
        events.append(
            {
                "t_ns": T0 + round(spec.subscribed_s * 1e9),
                "agent": "customer",
                "event": "local_track_subscribed",
            }
        )
    events.sort(key=lambda e: e["t_ns"])
    (run / c.EVENTS).write_text("".join(json.dumps(e) + "\n" for e in events))
    (run / c.RTC_STATS).write_text(json.dumps({"customer": {"final": {}, "samples": []}}))
    (run / c.HOST).write_text(_host_rows(spec))
    worker = None
    if spec.exited_s is not None:
        (run / files["worker_log"]).write_text("registered worker\nTraceback: crash\n")
        worker = {
            "log": files["worker_log"],
            "started_ns": T0 - 5_000_000_000,
            "registered_ns": T0 - 1_000_000_000,
            "exit_code": 1,
            "exited_ns": T0 + round(spec.exited_s * 1e9),
            "stopped_by": None,
        }
    manifest = c.Manifest(
        run_id=name,
        room=f"echoproof-{name}",
        server_url="ws://127.0.0.1:7880",
        embedded_server=True,
        mode=c.AGENT_MODE,
        participants={c.CUSTOMER: {"identity": "customer-x", "tone_hz": 440.0}},
        directions=[],
        agent={
            "name": "reply-agent",
            "dispatch_id": "AD_synth",
            "dispatched_ns": None
            if spec.dispatched_s is None
            else T0 + round(spec.dispatched_s * 1e9),
            "identity": "agent-AJ_synth",
            "kind": "AGENT",
            "joined_ns": joined_ns,
            "answer_window_s": spec.window_s,
            "files": files,
            "worker": worker,
        },
        host={"file": c.HOST, "server_sampled": False},
        burst={"duration_s": 0.3, "ramp_s": 0.005, "amplitude": 0.5},
        clock={"monotonic_ns": T0, "wall": "2026-11-30T12:00:00.000000Z"},
        started_at="2026-11-30T12:00:00.000000Z",
        ended_at="2026-11-30T12:00:12.000000Z",
        duration_s=spec.duration_s,
        status="complete",
        config={"thresholds": {}},
        fleet=None if spec.fleet is None else {"id": spec.fleet, "size": 3},
    )
    (run / c.MANIFEST).write_text(json.dumps(manifest.to_json(), indent=2))
    return run


def _transcript(
    end_ns: int, after_ms: float, track: str, segment: str, text: str, final: bool
) -> dict[str, object]:
    """One line of the transcripts file: a stream opened `after_ms` after a turn's speech
    ended, closed 300 ms later (the agent's reply is written as it is spoken)."""
    opened = end_ns + round(after_ms * 1e6)
    ids = {"customer": "TR_customer", "agent": "TR_agent"}
    return {
        "t_ns": opened + (300_000_000 if track == "agent" else 1_000_000),
        "opened_ns": opened,
        "sender": "agent-AJ_synth",
        "track": track,
        "attributes": {
            c.TRANSCRIBED_TRACK: ids[track],
            c.SEGMENT: segment,
            c.FINAL: "true" if final else "false",
        },
        "text": text,
        "complete": True,
    }


def _host_rows(spec: AgentSpec) -> str:
    """host.csv: the header, and with `agent_stall_at_s` a window a second over the whole run,
    the agent's worker waiting 400 ms for a CPU in the one ending then (5 ms in the others)."""
    lines = [",".join(c.HOST_COLUMNS)]
    if spec.agent_stall_at_s is not None:
        for second in range(1, int(spec.duration_s) + 1):
            wait = 400.0 if second == round(spec.agent_stall_at_s) else 5.0
            figures = {"window_ms": 1000.0, "agent_cpu_ms": 20.0, "agent_wait_ms": wait}
            cells = [str(figures.get(name, "")) for name in c.HOST_COLUMNS[1:]]
            lines.append(",".join([str(T0 + second * 1_000_000_000), *cells]))
    return "\n".join(lines) + "\n"


def turn_ends_s(run: Path) -> list[float]:
    """Each turn's end as sent, in seconds on the run's clock (from the turns file)."""
    with (run / "customer.utterances.csv").open() as f:
        return [(int(r["sent_end_ns"]) - T0) / 1e9 for r in csv.DictReader(f)]
