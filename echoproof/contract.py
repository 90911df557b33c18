"""The evidence contract (docs/evidence.md) in code: the one definition both stages import.

`pipeline` writes a run folder by these names, headers and rates; `verify` reads it by the same
ones. Nothing here does I/O, and it needs only the standard library, so an archive machine that
has verify but not livekit can import it.

- Audio: `SAMPLE_RATE` Hz, `CHANNELS` channel, `SAMPLE_WIDTH`-byte (int16) samples, frames of
  `FRAME_SAMPLES` samples (10 ms, `FRAME_NS`). The two roles of a conversation are `ROLES`
  (`CUSTOMER`, `SUPPORT`); a participant's identity starts with its role's `IDENTITY_PREFIXES`.
- Files: `MANIFEST`, `RTC_STATS`, `RTC_SAMPLES` (when the manifest's `rtc_samples` names it),
  `EVENTS`, `HOST`, and per direction the names `wav_name`,
  `arrivals_name`, `sent_name` and `bursts_name` give (`directions()` lists them as the
  manifest does). verify writes the `DERIVED` files (and `*.png` views): not evidence.
- CSV headers: `TIMING_HEADER` (sent and arrivals), `BURSTS_HEADER`, `HOST_COLUMNS` (older
  files have its first `HOST_COLUMNS_BEFORE_AGENT`).
- The manifest: `Manifest`, its keys as typed fields (`to_json` writes them, `from_json` reads
  them back), `MANIFEST_SCHEMA`, one of `STATUSES`, a direction's `DIRECTION_FIELDS` and the
  burst's `BURST_FIELDS`.
- An agent under test (manifest `mode` `AGENT_MODE`): the Customer's turns in `utterances_name`
  (`UTTERANCES_HEADER`, UTF-8 for its `text`; older files have its first
  `UTTERANCES_FILE_COLUMNS` or `UTTERANCES_SPEECH_COLUMNS`, or those and `text` alone), the
  worker's output in `WORKER_LOG`, the room's transcriptions (`TRANSCRIPTION_TOPIC`) as the
  Customer received them in `TRANSCRIPTS` (`TRANSCRIPT_FIELDS`, one JSON object per line, the
  speaker one of `TRANSCRIPT_TRACKS`; the streams' attributes by livekit-agents' names
  `TRANSCRIBED_TRACK`, `SEGMENT`, `FINAL`); `agent_files()` lists the files as the manifest's
  `agent` block names them.
- The speech-like probe (when the manifest's `probe` is not null): `PROBE`, and per sender
  `probe_name` with `PROBE_HEADER`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

SAMPLE_RATE = 48_000
CHANNELS = 1
SAMPLE_WIDTH = 2  # bytes: int16
FRAME_SAMPLES = 480  # 10 ms
ROLES = ("customer", "support")
CUSTOMER, SUPPORT = ROLES
FRAME_NS = FRAME_SAMPLES * 1_000_000_000 // SAMPLE_RATE
# The manifest's `participants.<role>.identity`: the prefix, then a UUID.
IDENTITY_PREFIXES = {CUSTOMER: "customer-", SUPPORT: "support-agent-"}

MANIFEST_SCHEMA = "echoproof.manifest/1"
# running: the writer died (or is still at work); the others say how the run ended.
STATUSES = ("running", "complete", "interrupted", "failed")
DIRECTION_FIELDS = ("from", "to", "wav", "arrivals", "sent", "bursts")
BURST_FIELDS = ("duration_s", "ramp_s", "amplitude")

MANIFEST = "manifest.json"
RTC_STATS = "rtc-stats.json"
# The statistics sampled every few seconds, one JSON object per line as taken: a long run's
# samples stay on disk, not in the capture's memory (older runs kept them in RTC_STATS).
RTC_SAMPLES = "rtc-stats-samples.jsonl"
EVENTS = "events.jsonl"
HOST = "host.csv"

TIMING_HEADER = ("frame", "sample", "samples", "t_ns")
BURSTS_HEADER = ("burst", "freq_hz", "start_sample", "samples")
# host.csv's columns, in order: what each means is in pipeline.recording.host and docs/evidence.md.
HOST_COLUMNS = (
    "t_ns",
    "window_ms",
    "customer_send_late_ms",
    "support_send_late_ms",
    "customer_recv_gap_ms",
    "support_recv_gap_ms",
    "loop_lag_ms",
    "capture_wait_ms",
    "loop_thread_wait_ms",
    "server_wait_ms",
    "steal_pct",
    "pressure_pct",
    "agent_cpu_ms",
    "agent_wait_ms",
)
# A host.csv written before the agent worker's columns has the first 12.
HOST_COLUMNS_BEFORE_AGENT = 12

AGENT_MODE = "agent"
WORKER_LOG = "agent-worker.log"
UTTERANCES_HEADER = (
    "turn",
    "source",
    "sha256",
    "start_sample",
    "samples",
    "sent_start_ns",
    "sent_end_ns",
    "speech_start_sample",
    "speech_samples",
    "speech_start_ns",
    "speech_end_ns",
    # how the turn was said (a caller's script; empty cells: not asked for)
    "barge_in_after_ms",
    "barge_in_heard_ns",
    "noise",
    "snr_db",
    "phone",
    "text",  # the words said (UTF-8), empty when not known (a --say file)
)
# A turns file written before the speech's bounds were recorded has the file's columns only;
# one written before a caller's script existed, those and the speech's, and maybe `text` after
# them (written so between the words and the script).
UTTERANCES_FILE_COLUMNS = 7
UTTERANCES_SPEECH_COLUMNS = 11

# The room's transcriptions, as livekit-agents publishes them: text streams on this topic, one
# per segment and update, the speaker told apart by the track transcribed (every stream's
# sender is the agent, even for the caller's words).
TRANSCRIPTION_TOPIC = "lk.transcription"
TRANSCRIBED_TRACK = "lk.transcribed_track_id"
SEGMENT = "lk.segment_id"
FINAL = "lk.transcription_final"
TRANSCRIPTS = "customer.transcripts.jsonl"
# One object per text stream received: `t_ns` its end arrived (or the run closed, `complete`
# false), `opened_ns` its header arrived, `sender` identity, `track` whose track it transcribes
# (one of TRANSCRIPT_TRACKS, or null: neither), its `attributes` (raw names) and `text`.
TRANSCRIPT_FIELDS = ("t_ns", "opened_ns", "sender", "track", "attributes", "text", "complete")
TRANSCRIPT_TRACKS = ("customer", "agent")

REPORT = "report.json"
ENVELOPE = "report.dsse.json"
SIGNER_KEY = "signer.pub.pem"
HTML = "report.html"
#: Files verify writes: not evidence, not hashed.
DERIVED = frozenset({REPORT, ENVELOPE, SIGNER_KEY, HTML})


def is_derived(name: str) -> bool:
    """True for a file verify writes itself (report, envelope, key, HTML, plots)."""
    return name in DERIVED or name.endswith(".png")


def other(role: str) -> str:
    """The other role of a conversation."""
    return SUPPORT if role == CUSTOMER else CUSTOMER


class ContractError(ValueError):
    """A manifest that does not have the contract's shape; the message says what and where."""


@dataclasses.dataclass
class Manifest:
    """`manifest.json`: how the run was made and which files its folder holds (docs/evidence.md).

    Written by the capture stage as the run starts (status `running`) and again when it ends;
    read by verify. Its keys are these fields, in this order (`to_json`); the blocks inside are
    plain objects, named by the module that writes them (`participants.<role>`: identity,
    tone_hz; a direction: `DIRECTION_FIELDS`; `burst`: `BURST_FIELDS`; `clock`: monotonic_ns,
    wall; `host`: file, server_sampled; `agent`, `probe`, `fleet`, `realtime` or null; `node`:
    host, ray_node_id of the Ray node that ran it, null for a run on this machine;
    `rtc_samples`: the file of sampled RTC statistics, null for a run that samples none or was
    made before it).
    """

    run_id: str
    participants: dict[str, dict[str, Any]]
    directions: list[dict[str, str]]
    burst: dict[str, float]
    clock: dict[str, Any]
    room: str | None = None
    server_url: str | None = None
    embedded_server: bool = False
    mode: str = "turns"
    agent: dict[str, Any] | None = None
    host: dict[str, Any] | None = None
    started_at: str | None = None
    duration_s: float | None = None
    versions: dict[str, str] = dataclasses.field(default_factory=dict)
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    probe: dict[str, Any] | None = None
    fleet: dict[str, Any] | None = None
    node: dict[str, Any] | None = None
    status: str = "running"
    reason: str | None = None
    ended_at: str | None = None
    realtime: dict[str, Any] | None = None
    rtc_samples: str | None = None
    schema: str = MANIFEST_SCHEMA
    sample_rate: int = SAMPLE_RATE
    channels: int = CHANNELS
    frame_samples: int = FRAME_SAMPLES

    _ORDER = (
        "schema", "run_id", "room", "server_url", "embedded_server", "mode", "sample_rate",
        "channels", "frame_samples", "participants", "directions", "agent", "host", "burst",
        "clock", "started_at", "duration_s", "versions", "config", "probe", "fleet", "node",
        "status", "reason", "ended_at", "realtime", "rtc_samples",
    )  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        """The manifest as `manifest.json` holds it, keys in the contract's order."""
        return {key: getattr(self, key) for key in self._ORDER}

    @classmethod
    def from_json(cls, data: Any) -> Manifest:
        """A manifest read back: the contract's keys (others, from a newer writer, are left
        out); ContractError when one is missing or of the wrong kind."""
        if not isinstance(data, dict):
            raise ContractError(f"{MANIFEST} holds {type(data).__name__}, expected an object")
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in data:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise ContractError(f"{MANIFEST} has no field {f.name!r}")
                continue
            value = data[f.name]
            kind = _KINDS[f.name]
            if not isinstance(value, kind) or (isinstance(value, bool) and bool not in kind):
                raise ContractError(
                    f"{MANIFEST} field {f.name!r} is {value!r}, expected {_kind_words(kind)}"
                )
            values[f.name] = value
        return cls(**values)


_NONE = type(None)
_KINDS: dict[str, tuple[type, ...]] = {
    "run_id": (str,), "participants": (dict,), "directions": (list,), "burst": (dict,),
    "clock": (dict,), "room": (str, _NONE), "server_url": (str, _NONE),
    "embedded_server": (bool,), "mode": (str,), "agent": (dict, _NONE), "host": (dict, _NONE),
    "started_at": (str, _NONE), "duration_s": (int, float, _NONE), "versions": (dict,),
    "config": (dict, _NONE), "probe": (dict, _NONE), "fleet": (dict, _NONE),
    "node": (dict, _NONE), "status": (str,),
    "reason": (str, _NONE), "ended_at": (str, _NONE), "realtime": (dict, _NONE),
    "rtc_samples": (str, _NONE),
    "schema": (str,), "sample_rate": (int,), "channels": (int,), "frame_samples": (int,),
}  # fmt: skip


def _kind_words(kind: tuple[type, ...]) -> str:
    names = {str: "a string", int: "a number", float: "a number", dict: "an object",
             list: "a list", bool: "true or false", _NONE: "null"}  # fmt: skip
    return " or ".join(dict.fromkeys(names[k] for k in kind))


def wav_name(receiver: str) -> str:
    """What `receiver` heard: `<receiver>-from-<sender>.wav`."""
    return f"{receiver}-from-{other(receiver)}.wav"


def arrivals_name(receiver: str) -> str:
    """Per received frame timing: `<receiver>-from-<sender>.arrivals.csv`."""
    return f"{receiver}-from-{other(receiver)}.arrivals.csv"


def sent_name(sender: str) -> str:
    """Per sent frame timing: `<sender>.sent.csv`."""
    return f"{sender}.sent.csv"


def bursts_name(sender: str) -> str:
    """The burst schedule actually sent: `<sender>.bursts.csv`."""
    return f"{sender}.bursts.csv"


def directions() -> list[dict[str, str]]:
    """The manifest's `directions`: one entry per sender -> receiver."""
    return [
        {
            "from": sender,
            "to": other(sender),
            "wav": wav_name(other(sender)),
            "arrivals": arrivals_name(other(sender)),
            "sent": sent_name(sender),
            "bursts": bursts_name(sender),
        }
        for sender in ROLES
    ]


def utterances_name(sender: str) -> str:
    """The turns a sender said to an agent under test: `<sender>.utterances.csv`."""
    return f"{sender}.utterances.csv"


def agent_files(worker_log: bool) -> dict[str, str | None]:
    """The manifest's `agent.files`: what the Customer heard from the agent and said to it."""
    return {
        "wav": wav_name("customer"),
        "arrivals": arrivals_name("customer"),
        "sent": sent_name("customer"),
        "utterances": utterances_name("customer"),
        "transcripts": TRANSCRIPTS,
        "worker_log": WORKER_LOG if worker_log else None,
    }


# -- the speech-like probe (optional: a run made without it has no probe files) -------------------
PROBE = "probe.wav"  # the probe signal both senders play pieces of (48 kHz mono int16)
PROBE_HEADER = ("piece", "segment", "start_sample", "samples", "probe_sample")


def probe_name(sender: str) -> str:
    """Where `sender` played the probe: `<sender>.probe.csv`."""
    return f"{sender}.probe.csv"
