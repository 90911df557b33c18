"""The evidence contract (docs/evidence.md) in code: the one definition both stages import.

`pipeline` writes a run folder by these names, headers and rates; `verify` reads it by the same
ones. Nothing here does I/O, and it needs only the standard library, so an archive machine that
has verify but not livekit can import it.

- Audio: `SAMPLE_RATE` Hz, `CHANNELS` channel, `SAMPLE_WIDTH`-byte (int16) samples, frames of
  `FRAME_SAMPLES` samples (10 ms, `FRAME_NS`). The two roles of a conversation are `ROLES`
  (`CUSTOMER`, `SUPPORT`); a participant's identity starts with its role's `IDENTITY_PREFIXES`.
- Files: `MANIFEST`, `RTC_STATS`, `EVENTS`, `HOST`, and per direction the names `wav_name`,
  `arrivals_name`, `sent_name` and `bursts_name` give (`directions()` lists them as the
  manifest does). verify writes the `DERIVED` files (and `*.png` views): not evidence.
- CSV headers: `TIMING_HEADER` (sent and arrivals), `BURSTS_HEADER`, `HOST_COLUMNS`.
- The manifest: `MANIFEST_SCHEMA`, one of `STATUSES`, a direction's `DIRECTION_FIELDS` and the
  burst's `BURST_FIELDS`.
- An agent under test (manifest `mode` `AGENT_MODE`): the Customer's turns in `utterances_name`
  (`UTTERANCES_HEADER`), the worker's output in `WORKER_LOG`; `agent_files()` lists the files
  as the manifest's `agent` block names them.
- The speech-like probe (when the manifest's `probe` is not null): `PROBE`, and per sender
  `probe_name` with `PROBE_HEADER`.
"""

from __future__ import annotations

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
)

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
)

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
    return "support" if role == "customer" else "customer"


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
        "worker_log": WORKER_LOG if worker_log else None,
    }


# -- the speech-like probe (optional: a run made without it has no probe files) -------------------
PROBE = "probe.wav"  # the probe signal both senders play pieces of (48 kHz mono int16)
PROBE_HEADER = ("piece", "segment", "start_sample", "samples", "probe_sample")


def probe_name(sender: str) -> str:
    """Where `sender` played the probe: `<sender>.probe.csv`."""
    return f"{sender}.probe.csv"
