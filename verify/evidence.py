"""Reading a run folder as docs/evidence.md describes it, and nothing else.

Every reader checks what it reads against the contract and raises :class:`EvidenceError` naming the
file and what differs. Readers are fast enough for an hour of audio: WAVs are read with soundfile
(libsndfile) a stretch at a time (`verify.recording`), CSVs with one vectorised parse (and a
line-by-line pass only to word an error).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from dsp.noise import KINDS as NOISE_KINDS

# The contract's one definition (echoproof.contract), re-exported: verify's modules read it here.
from echoproof.contract import AGENT_MODE as AGENT_MODE
from echoproof.contract import (
    BURST_FIELDS,
    DIRECTION_FIELDS,
    FINAL,
    HOST_COLUMNS_BEFORE_AGENT,
    SEGMENT,
    TRANSCRIPT_FIELDS,
    TRANSCRIPT_TRACKS,
    UTTERANCES_FILE_COLUMNS,
    UTTERANCES_SPEECH_COLUMNS,
    ContractError,
)
from echoproof.contract import BURSTS_HEADER as BURSTS_HEADER
from echoproof.contract import DERIVED as DERIVED
from echoproof.contract import ENVELOPE as ENVELOPE
from echoproof.contract import EVENTS as EVENTS
from echoproof.contract import HOST as HOST
from echoproof.contract import HOST_COLUMNS as HOST_COLUMNS
from echoproof.contract import HTML as HTML
from echoproof.contract import MANIFEST as MANIFEST
from echoproof.contract import MANIFEST_SCHEMA as MANIFEST_SCHEMA
from echoproof.contract import PROBE_HEADER as PROBE_HEADER
from echoproof.contract import REPORT as REPORT
from echoproof.contract import RTC_STATS as RTC_STATS
from echoproof.contract import SAMPLE_RATE as SAMPLE_RATE
from echoproof.contract import SAMPLE_WIDTH as SAMPLE_WIDTH
from echoproof.contract import SIGNER_KEY as SIGNER_KEY
from echoproof.contract import STATUSES as STATUSES
from echoproof.contract import TIMING_HEADER as TIMING_HEADER
from echoproof.contract import UTTERANCES_HEADER as UTTERANCES_HEADER
from echoproof.contract import Manifest as Manifest
from echoproof.contract import is_derived as is_derived
from verify.errors import EvidenceError
from verify.recording import Recording as Recording
from verify.recording import read_wav as read_wav

_PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

IntArray = npt.NDArray[np.int64]


@dataclasses.dataclass(frozen=True)
class Timing:
    """One `*.sent.csv` or `*.arrivals.csv`: one entry per frame, in order."""

    sample: IntArray
    samples: IntArray
    t_ns: IntArray

    def __len__(self) -> int:
        return len(self.sample)

    @property
    def total_samples(self) -> int:
        """Samples in every frame together."""
        return int(self.samples.sum())


def common_part(size: int, arrivals: Timing, *, strict: bool, wav: str, timing: str) -> Timing:
    """A recording's arrivals cut to what both cover (the recording, of `size` samples, is then
    cut to their `total_samples`): a writer killed mid-frame leaves one longer than the other.
    With `strict` (a complete run with both files) they must agree.
    """
    if size == arrivals.total_samples:
        return arrivals
    if strict:
        raise EvidenceError(
            f"{wav} holds {size} samples but {timing} lists "
            f"{arrivals.total_samples}, expected the same count"
        )
    keep = int(np.searchsorted(arrivals.sample + arrivals.samples, size, "right"))
    return Timing(arrivals.sample[:keep], arrivals.samples[:keep], arrivals.t_ns[:keep])


@dataclasses.dataclass(frozen=True)
class Schedule:
    """One `<sender>.bursts.csv`: the bursts actually sent."""

    burst: IntArray
    freq_hz: npt.NDArray[np.float64]
    start_sample: IntArray
    samples: IntArray

    def __len__(self) -> int:
        return len(self.burst)


@dataclasses.dataclass(frozen=True)
class HostTable:
    """`host.csv`: each window's end (`t_ns`) and its figures by column (NaN: not measured)."""

    t_ns: IntArray
    columns: dict[str, npt.NDArray[np.float64]]

    def __len__(self) -> int:
        return len(self.t_ns)


@dataclasses.dataclass(frozen=True)
class DirectionFiles:
    """The four files of one direction, as the manifest names them."""

    sender: str
    receiver: str
    wav: str
    arrivals: str
    sent: str
    bursts: str

    @property
    def label(self) -> str:
        """`customer->support`."""
        return f"{self.sender}->{self.receiver}"

    @property
    def names(self) -> tuple[str, str, str, str]:
        """The direction's file names."""
        return (self.wav, self.arrivals, self.sent, self.bursts)


def read_json(path: Path) -> Any:
    """A JSON file's value; a missing or corrupt file raises naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EvidenceError(f"{path.name} is missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EvidenceError(f"{path.name} cannot be read as UTF-8 text: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise EvidenceError(
            f"{path.name} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None


def _need(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise EvidenceError(f"{where} has no field {key!r}")
    value = obj[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        raise EvidenceError(f"{where} field {key!r} is {value!r}, expected {_kind_name(kind)}")
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "a number", float: "a number", dict: "an object", list: "a list"}
    return " or ".join(dict.fromkeys(names.get(k, k.__name__) for k in _as_tuple(kind)))


def read_manifest(run_dir: Path) -> Manifest:
    """`manifest.json`, checked against the contract's shape."""
    manifest = read_json(run_dir / MANIFEST)
    where = MANIFEST
    if not isinstance(manifest, dict):
        raise EvidenceError(f"{where} holds {type(manifest).__name__}, expected an object")
    schema = _need(manifest, "schema", str, where)
    if schema != MANIFEST_SCHEMA:
        raise EvidenceError(f"{where} schema is {schema!r}, expected {MANIFEST_SCHEMA!r}")
    for key in ("run_id", "status"):
        _need(manifest, key, str, where)
    if manifest["status"] not in STATUSES:
        raise EvidenceError(
            f"{where} status is {manifest['status']!r}, expected one of {', '.join(STATUSES)}"
        )
    rate = _need(manifest, "sample_rate", int, where)
    if rate != SAMPLE_RATE:
        raise EvidenceError(f"{where} sample_rate is {rate}, expected {SAMPLE_RATE}")
    participants = _need(manifest, "participants", dict, where)
    for role, info in participants.items():
        if not isinstance(info, dict):
            raise EvidenceError(f"{where} participant {role!r} is not an object")
        _need(info, "tone_hz", (int, float), f"{where} participant {role!r}")
    burst = _need(manifest, "burst", dict, where)
    for key in BURST_FIELDS:
        _need(burst, key, (int, float), f"{where} burst")
    directions = _need(manifest, "directions", list, where)
    for i, direction in enumerate(directions):
        if not isinstance(direction, dict):
            raise EvidenceError(f"{where} directions[{i}] is not an object")
        for key in DIRECTION_FIELDS:
            value = _need(direction, key, str, f"{where} directions[{i}]")
            if key not in ("from", "to") and not _PLAIN_NAME.match(value):
                raise EvidenceError(
                    f"{where} directions[{i}].{key} is {value!r}, expected a plain file name"
                )
        if direction["from"] not in participants:
            raise EvidenceError(
                f"{where} directions[{i}] is from {direction['from']!r}, which is not a participant"
            )
    host = manifest.get("host")
    if host is not None:
        if not isinstance(host, dict):
            raise EvidenceError(f"{where} field 'host' is {host!r}, expected an object")
        name = _need(host, "file", str, f"{where} host")
        if not _PLAIN_NAME.match(name):
            raise EvidenceError(f"{where} host.file is {name!r}, expected a plain file name")
    probe = manifest.get("probe")
    if probe is not None:
        if not isinstance(probe, dict):
            raise EvidenceError(f"{where} field 'probe' is {probe!r}, expected an object")
        pieces = _need(probe, "pieces", dict, f"{where} probe")
        for name in [_need(probe, "file", str, f"{where} probe"), *pieces.values()]:
            if not isinstance(name, str) or not _PLAIN_NAME.match(name):
                raise EvidenceError(f"{where} probe names {name!r}, expected a plain file name")
    samples = manifest.get("rtc_samples")
    if isinstance(samples, str) and not _PLAIN_NAME.match(samples):
        raise EvidenceError(f"{where} rtc_samples is {samples!r}, expected a plain file name")
    if (config := manifest.get("config")) is not None and not isinstance(config, dict):
        raise EvidenceError(f"{where} field 'config' is {config!r}, expected an object")
    if manifest.get("mode") == AGENT_MODE:
        _check_agent(manifest)
    try:
        return Manifest.from_json(manifest)
    except ContractError as exc:
        raise EvidenceError(str(exc)) from None


def _check_agent(manifest: dict[str, Any]) -> None:
    """The `agent` block of a run with an agent under test."""
    where = f"{MANIFEST} agent"
    agent = _need(manifest, "agent", dict, MANIFEST)
    _need(agent, "name", str, where)
    _need(agent, "answer_window_s", (int, float), where)
    for key in ("dispatched_ns", "joined_ns"):
        value = agent.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise EvidenceError(f"{where} field {key!r} is {value!r}, expected an integer or null")
    files = _need(agent, "files", dict, where)
    for key in ("wav", "arrivals", "sent", "utterances"):
        value = _need(files, key, str, f"{where} files")
        if not _PLAIN_NAME.match(value):
            raise EvidenceError(f"{where} files.{key} is {value!r}, expected a plain file name")
    for key in ("transcripts", "worker_log"):  # transcripts: absent in a run made before them
        value = files.get(key)
        if value is not None and (not isinstance(value, str) or not _PLAIN_NAME.match(value)):
            raise EvidenceError(f"{where} files.{key} is {value!r}, expected a plain file name")
    worker = agent.get("worker")
    if worker is not None and not isinstance(worker, dict):
        raise EvidenceError(f"{where} field 'worker' is {worker!r}, expected an object or null")


def agent_files(manifest: Manifest) -> dict[str, str] | None:
    """The files of an agent under test a (checked) manifest names; None for a tone run."""
    if manifest.mode != AGENT_MODE or manifest.agent is None:
        return None
    files = manifest.agent["files"]
    return {k: v for k, v in files.items() if v is not None}


def direction_files(manifest: Manifest) -> list[DirectionFiles]:
    """The directions a (checked) manifest lists."""
    return [
        DirectionFiles(d["from"], d["to"], d["wav"], d["arrivals"], d["sent"], d["bursts"])
        for d in manifest.directions
    ]


def host_file(manifest: Manifest) -> str | None:
    """The host figures' file a (checked) manifest names; None for a run made before them."""
    return None if manifest.host is None else str(manifest.host["file"])


def evidence_names(manifest: Manifest) -> list[str]:
    """Every evidence file a run with this manifest has, sorted."""
    names = {MANIFEST, RTC_STATS, EVENTS}
    if manifest.rtc_samples is not None:
        names.add(manifest.rtc_samples)
    if (host := host_file(manifest)) is not None:
        names.add(host)
    for direction in direction_files(manifest):
        names.update(direction.names)
    names.update((agent_files(manifest) or {}).values())
    if (probe := manifest.probe) is not None:
        names.update([probe["file"], *probe["pieces"].values()])
    return sorted(names)


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _csv_text(
    path: Path, header: tuple[str, ...], oldest: int | None = None, encoding: str = "ascii"
) -> tuple[int, str]:
    """The file's column count and its body after the header. The header must be `header`, or,
    from an older writer, its first `oldest` or more columns."""
    try:
        text = path.read_text(encoding=encoding)
    except FileNotFoundError:
        raise EvidenceError(f"{path.name} is missing") from None
    except UnicodeDecodeError:
        raise EvidenceError(
            f"{path.name} holds bytes that are not {encoding.upper()}, expected a CSV of numbers"
            + ("" if encoding == "ascii" else " and text")
        ) from None
    except OSError as exc:
        raise EvidenceError(f"{path.name} cannot be read: {exc.strerror}") from None
    first, _, body = text.partition("\n")
    found = tuple(c.strip() for c in first.strip().split(","))
    if found != header[: len(found)] or len(found) < (oldest or len(header)):
        raise EvidenceError(
            f"{path.name} header is {first.strip()!r}, expected {','.join(header)!r}"
        )
    return len(found), body


def _bad_row(path: Path, body: str, columns: int, kinds: tuple[type, ...]) -> EvidenceError:
    """The first malformed row, worded (the slow path, only taken on error)."""
    for n, row in enumerate(csv.reader(io.StringIO(body)), start=2):
        if not row:
            continue
        if len(row) != columns:
            return EvidenceError(f"{path.name} line {n} has {len(row)} fields, expected {columns}")
        for value, kind in zip(row, kinds, strict=True):
            try:
                kind(value)
            except ValueError:
                return EvidenceError(
                    f"{path.name} line {n} holds {value!r}, expected "
                    + ("an integer" if kind is int else "a number")
                )
    return EvidenceError(f"{path.name} is malformed")


def read_timing(path: Path, *, partial_tail: bool = False) -> Timing:
    """A `*.sent.csv` or `*.arrivals.csv`, checked: frames numbered 0.., samples contiguous.

    `partial_tail`: the writer may have been killed mid-line (a run that did not complete); an
    unterminated last line is then dropped rather than refused.
    """
    _, body = _csv_text(path, TIMING_HEADER)
    if partial_tail and body and not body.endswith("\n"):
        body = body[: body.rfind("\n") + 1]
    parts, rows = [], 0
    for lines in _line_blocks(body):  # an hour is 360,000 rows: parsed a block at a time
        rows += len(lines)
        try:
            with warnings.catch_warnings():
                # older numpy warns and stops at an unparsable value (newer raises): size checked
                warnings.simplefilter("ignore")
                flat = np.fromstring(",".join(lines), dtype=np.int64, sep=",")
        except ValueError:
            raise _bad_row(path, body, 4, (int,) * 4) from None
        if flat.size != len(lines) * 4:
            raise _bad_row(path, body, 4, (int,) * 4)
        parts.append(flat.reshape(len(lines), 4))
    table = np.concatenate(parts) if parts else np.zeros((0, 4), np.int64)
    frame, sample, samples, t_ns = (np.ascontiguousarray(table[:, i]) for i in range(4))
    if rows:
        _check_column(path, "frame", frame, np.arange(rows))
        if (samples <= 0).any():
            i = int(np.argmax(samples <= 0))
            raise EvidenceError(
                f"{path.name} line {i + 2}: samples is {int(samples[i])}, expected a positive count"
            )
        _check_column(path, "sample", sample, np.concatenate(([0], np.cumsum(samples)[:-1])))
        back = np.diff(t_ns) < 0
        if back.any():
            i = int(np.argmax(back)) + 1
            raise EvidenceError(
                f"{path.name} line {i + 2}: t_ns {int(t_ns[i])} is earlier than the previous "
                f"frame's {int(t_ns[i - 1])}, expected a monotonic clock"
            )
    return Timing(sample=sample, samples=samples, t_ns=t_ns)


def _line_blocks(body: str, size: int = 1 << 20) -> Iterator[list[str]]:
    """The non-blank lines of `body`, in blocks of about `size` characters."""
    start = 0
    while start < len(body):
        stop = body.find("\n", start + size)
        stop = len(body) if stop < 0 else stop + 1
        lines = [line for line in body[start:stop].split("\n") if line.strip()]
        if lines:
            yield lines
        start = stop


def _check_column(path: Path, name: str, found: IntArray, expected: IntArray) -> None:
    bad = found != expected
    if bad.any():
        i = int(np.argmax(bad))
        raise EvidenceError(
            f"{path.name} line {i + 2}: {name} is {int(found[i])}, expected {int(expected[i])}"
        )


def read_host(path: Path, *, partial_tail: bool = False) -> HostTable:
    """`host.csv`: the header as the contract says, integer `t_ns` rising, numbers or empty cells.

    `partial_tail`: a run that did not complete may end mid-line; that line is dropped.
    """
    columns, body = _csv_text(path, HOST_COLUMNS, HOST_COLUMNS_BEFORE_AGENT)
    if partial_tail and body and not body.endswith("\n"):
        body = body[: body.rfind("\n") + 1]
    t_ns: list[int] = []
    values: list[list[float]] = []
    for n, row in enumerate(csv.reader(io.StringIO(body)), start=2):
        if not row:
            continue
        if len(row) != columns:
            raise EvidenceError(f"{path.name} line {n} has {len(row)} fields, expected {columns}")
        try:
            t_ns.append(int(row[0]))
            values.append([float(v) if v else math.nan for v in row[1:]])
        except ValueError:
            raise EvidenceError(
                f"{path.name} line {n} holds {row!r}, expected an integer t_ns and numbers "
                "or empty cells"
            ) from None
        if not all(math.isnan(v) or (math.isfinite(v) and v >= 0) for v in values[-1]):
            raise EvidenceError(
                f"{path.name} line {n} holds a negative or infinite figure, expected >= 0"
            )
        if len(t_ns) > 1 and t_ns[-1] <= t_ns[-2]:
            raise EvidenceError(
                f"{path.name} line {n}: t_ns {t_ns[-1]} is not after the previous window's "
                f"{t_ns[-2]}, expected a rising monotonic clock"
            )
    table = np.full((len(values), len(HOST_COLUMNS) - 1), np.nan)  # older files: not measured
    table[:, : columns - 1] = np.array(values, dtype=np.float64).reshape(len(values), columns - 1)
    return HostTable(
        t_ns=np.array(t_ns, dtype=np.int64),
        columns={name: table[:, i] for i, name in enumerate(HOST_COLUMNS[1:])},
    )


def read_schedule(path: Path) -> Schedule:
    """A `<sender>.bursts.csv`: ids, tones, start samples and lengths."""
    _, body = _csv_text(path, BURSTS_HEADER)
    ids: list[int] = []
    freqs: list[float] = []
    starts: list[int] = []
    lengths: list[int] = []
    for n, row in enumerate(csv.reader(io.StringIO(body)), start=2):
        if not row:
            continue
        if len(row) != 4:
            raise EvidenceError(f"{path.name} line {n} has {len(row)} fields, expected 4")
        try:
            ids.append(int(row[0]))
            freqs.append(float(row[1]))
            starts.append(int(row[2]))
            lengths.append(int(row[3]))
        except ValueError:
            raise _bad_row(path, body, 4, (int, float, int, int)) from None
        if lengths[-1] <= 0 or starts[-1] < 0:
            raise EvidenceError(
                f"{path.name} line {n}: start_sample {starts[-1]} and samples {lengths[-1]}, "
                "expected a non-negative start and a positive length"
            )
    schedule = Schedule(
        burst=np.array(ids, dtype=np.int64),
        freq_hz=np.array(freqs, dtype=np.float64),
        start_sample=np.array(starts, dtype=np.int64),
        samples=np.array(lengths, dtype=np.int64),
    )
    if len(schedule) > 1 and (np.diff(schedule.start_sample) <= 0).any():
        i = int(np.argmax(np.diff(schedule.start_sample) <= 0)) + 1
        raise EvidenceError(
            f"{path.name} line {i + 2}: burst starts at sample {starts[i]}, "
            f"expected after the previous burst's {starts[i - 1]}"
        )
    return schedule


def read_events(path: Path) -> list[dict[str, Any]]:
    """`events.jsonl`: one JSON object per line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise EvidenceError(f"{path.name} is missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EvidenceError(f"{path.name} cannot be read as UTF-8 text: {exc}") from None
    events = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvidenceError(f"{path.name} line {n} is not valid JSON ({exc.msg})") from None
        if not isinstance(event, dict):
            raise EvidenceError(f"{path.name} line {n} is not a JSON object")
        events.append(event)
    return events


@dataclasses.dataclass(frozen=True)
class Transcript:
    """One line of `customer.transcripts.jsonl`: a text stream the Customer received
    (`echoproof.contract.TRANSCRIPT_FIELDS`)."""

    t_ns: int
    opened_ns: int
    sender: str
    track: str | None
    attributes: dict[str, str]
    text: str
    complete: bool

    @property
    def segment(self) -> str | None:
        """Its segment id: the streams of one utterance share it."""
        return self.attributes.get(SEGMENT)

    @property
    def final(self) -> bool:
        """Whether it is the segment's final transcript."""
        return self.attributes.get(FINAL) == "true"


def read_transcripts(path: Path) -> list[Transcript]:
    """`customer.transcripts.jsonl`: every stream as the Customer received it, each line checked."""
    transcripts = []
    for n, record in enumerate(read_events(path), start=1):
        if set(record) != set(TRANSCRIPT_FIELDS):
            raise EvidenceError(
                f"{path.name} line {n} has fields {sorted(record)}, expected "
                f"{sorted(TRANSCRIPT_FIELDS)}"
            )
        t_ns, opened_ns, attributes = record["t_ns"], record["opened_ns"], record["attributes"]
        times_ok = all(isinstance(t, int) and not isinstance(t, bool) for t in (t_ns, opened_ns))
        attributes_ok = isinstance(attributes, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in attributes.items()
        )
        if not (
            times_ok
            and opened_ns <= t_ns
            and isinstance(record["sender"], str)
            and record["track"] in (*TRANSCRIPT_TRACKS, None)
            and attributes_ok
            and isinstance(record["text"], str)
            and isinstance(record["complete"], bool)
        ):
            raise EvidenceError(
                f"{path.name} line {n} is {json.dumps(record, ensure_ascii=False)[:200]}, "
                "expected integer times (opened_ns <= t_ns), a sender, a track of "
                f"{', '.join(TRANSCRIPT_TRACKS)} or null, string attributes, a text and "
                "complete true or false"
            )
        transcripts.append(Transcript(**{name: record[name] for name in TRANSCRIPT_FIELDS}))
    return transcripts


def read_schedule_empty() -> Schedule:
    """The schedule of a sender that sent no burst."""
    z = np.zeros(0, dtype=np.int64)
    return Schedule(burst=z, freq_hz=np.zeros(0), start_sample=z, samples=z)


@dataclasses.dataclass(frozen=True)
class HowSaid:
    """How a turn was said (a caller's script): a barge-in's planned delay and when the Customer
    heard the answer it barged into (None: it heard none, and said the turn after the answer
    window), the background noise and its SNR, the phone line (the words are `Turns.text`)."""

    barge_in_after_ms: float | None = None
    barge_in_heard_ns: int | None = None
    noise: str | None = None
    snr_db: float | None = None
    phone: bool = False


@dataclasses.dataclass(frozen=True)
class Turns:
    """`<sender>.utterances.csv`: the turns said to an agent under test, in order. The speech's
    bounds are None in a file written before they were recorded; `how` holds each turn's
    `HowSaid` (plain, in a file written before a caller's script existed)."""

    turn: IntArray
    source: list[str]
    sha256: list[str]
    start_sample: IntArray
    samples: IntArray
    sent_start_ns: IntArray
    sent_end_ns: IntArray
    speech_start_sample: IntArray | None = None
    speech_samples: IntArray | None = None
    speech_start_ns: IntArray | None = None
    speech_end_ns: IntArray | None = None
    text: list[str] | None = None
    how: list[HowSaid] = dataclasses.field(default_factory=list)

    def __len__(self) -> int:
        return len(self.turn)


# the turns file's columns that are text, not integers; and those that may be empty
_TURN_STRINGS = frozenset({"source", "sha256", "text", "noise"})
_TURN_OPTIONAL = {"barge_in_after_ms": float, "barge_in_heard_ns": int, "snr_db": float}
# written between the words and a caller's script: the speech's columns, then `text`
_TURNS_WITH_TEXT_ONLY = (*UTTERANCES_HEADER[:UTTERANCES_SPEECH_COLUMNS], "text")


def read_turns(path: Path) -> Turns:
    """A `<sender>.utterances.csv` (UTF-8: the words may be any): turns numbered 0.., each after
    the one before, each one's speech inside its file, and how each was said."""
    try:
        columns, body = _csv_text(
            path, UTTERANCES_HEADER, UTTERANCES_FILE_COLUMNS, encoding="utf-8"
        )
        names = UTTERANCES_HEADER[:columns]
    except EvidenceError:
        columns, body = _csv_text(path, _TURNS_WITH_TEXT_ONLY, encoding="utf-8")
        names = _TURNS_WITH_TEXT_ONLY
    known = (
        UTTERANCES_HEADER,
        _TURNS_WITH_TEXT_ONLY,
        UTTERANCES_HEADER[:UTTERANCES_SPEECH_COLUMNS],
    )
    if names not in (*known, UTTERANCES_HEADER[:UTTERANCES_FILE_COLUMNS]):
        raise EvidenceError(
            f"{path.name} has {columns} columns, expected {len(UTTERANCES_HEADER)} (or "
            f"{UTTERANCES_SPEECH_COLUMNS} or {UTTERANCES_FILE_COLUMNS} from an older writer)"
        )
    rows: list[dict[str, Any]] = []
    for n, row in enumerate(csv.reader(io.StringIO(body)), start=2):
        if not row:
            continue
        if len(row) != columns:
            raise EvidenceError(f"{path.name} line {n} has {len(row)} fields, expected {columns}")
        try:
            values = {
                name: _turn_value(name, value) for name, value in zip(names, row, strict=True)
            }
        except ValueError:
            raise EvidenceError(
                f"{path.name} line {n} holds {row!r}, expected integers but for "
                + ", ".join(x for x in names if x in _TURN_STRINGS)
            ) from None
        _check_turn(path.name, n, values, rows[-1] if rows else None)
        rows.append(values)

    def column(name: str) -> IntArray:
        return np.array([r[name] for r in rows], dtype=np.int64)

    return Turns(
        source=[r["source"] for r in rows],
        sha256=[r["sha256"] for r in rows],
        text=[r["text"] for r in rows] if "text" in names else None,
        how=[_how_said(path.name, n, r) for n, r in enumerate(rows, start=2)],
        **{name: column(name) for name in names if name in _TURN_INTEGERS},
    )


_TURN_INTEGERS = frozenset(UTTERANCES_HEADER[:UTTERANCES_SPEECH_COLUMNS]) - _TURN_STRINGS


def _turn_value(name: str, value: str) -> Any:
    """One cell of a turns file: a string, an integer, or an optional number (None if empty)."""
    if name in _TURN_STRINGS:
        return value
    if name in _TURN_OPTIONAL:
        return _TURN_OPTIONAL[name](value) if value else None
    return int(value)


def _how_said(name: str, n: int, row: dict[str, Any]) -> HowSaid:
    """How a turn was said, from its row (plain in a file written before a caller's script)."""
    if "phone" not in row:
        return HowSaid()
    noise = row["noise"] or None
    said = HowSaid(
        barge_in_after_ms=row["barge_in_after_ms"],
        barge_in_heard_ns=row["barge_in_heard_ns"],
        noise=noise,
        snr_db=row["snr_db"],
        phone=row["phone"] == 1,
    )
    if (
        row["phone"] not in (0, 1)
        or (noise is None) != (said.snr_db is None)
        or (noise is not None and noise not in NOISE_KINDS)
        or (said.barge_in_heard_ns is not None and said.barge_in_after_ms is None)
        or not math.isfinite((said.barge_in_after_ms or 0.0) + (said.snr_db or 0.0))
    ):
        raise EvidenceError(
            f"{name} line {n} says the turn was said as {dataclasses.astuple(said)!r}, expected "
            "a barge-in delay in ms and when its answer was heard (ns; both may be empty), a "
            f"noise of {' or '.join(NOISE_KINDS)} with its SNR in dB (or neither), and phone 0 "
            "or 1"
        )
    return said


def _check_turn(name: str, n: int, row: dict[str, Any], before: dict[str, Any] | None) -> None:
    """One row of a turns file: numbered in order, after the one before, its speech inside it."""
    turn, start, samples = row["turn"], row["start_sample"], row["samples"]
    t0, t1 = row["sent_start_ns"], row["sent_end_ns"]
    expected = 0 if before is None else before["turn"] + 1
    if turn != expected or samples <= 0 or t1 < t0:
        raise EvidenceError(
            f"{name} line {n}: turn {turn}, samples {samples}, sent {t0}..{t1} ns; "
            f"expected turn {expected}, a positive length and an end after the start"
        )
    if before is not None and start < before["start_sample"] + before["samples"]:
        raise EvidenceError(
            f"{name} line {n}: turn {turn} starts at sample {start}, expected after "
            f"the previous turn's end {before['start_sample'] + before['samples']}"
        )
    if "speech_samples" in row:
        s_start, s_samples = row["speech_start_sample"], row["speech_samples"]
        s0, s1 = row["speech_start_ns"], row["speech_end_ns"]
        if s_samples <= 0 or s_start < start or s_start + s_samples > start + samples or s1 < s0:
            raise EvidenceError(
                f"{name} line {n}: turn {turn}'s speech is samples {s_start}.."
                f"{s_start + s_samples}, sent {s0}..{s1} ns; expected a positive length inside "
                f"the turn's samples {start}..{start + samples} and an end after the start"
            )


def read_pieces(path: Path) -> tuple[IntArray, ...]:
    """A `<sender>.probe.csv`: per piece its id, segment, start sample, length and place in the
    probe signal, in order."""
    _, body = _csv_text(path, PROBE_HEADER)
    columns = len(PROBE_HEADER)
    rows: list[list[int]] = []
    for n, row in enumerate(csv.reader(io.StringIO(body)), start=2):
        if not row:
            continue
        try:
            values = [int(v) for v in row]
        except ValueError:
            raise _bad_row(path, body, columns, (int,) * columns) from None
        if len(values) != columns or values[3] <= 0 or values[2] < 0 or values[4] < 0:
            raise EvidenceError(
                f"{path.name} line {n} is {','.join(row)!r}, expected {columns} whole numbers "
                "with a positive length and non-negative positions"
            )
        if rows and values[2] < rows[-1][2] + rows[-1][3]:
            raise EvidenceError(
                f"{path.name} line {n}: piece starts at sample {values[2]}, expected after the "
                f"previous piece's end {rows[-1][2] + rows[-1][3]}"
            )
        rows.append(values)
    table = np.array(rows, dtype=np.int64).reshape(-1, columns)
    return tuple(table[:, i] for i in range(columns))
