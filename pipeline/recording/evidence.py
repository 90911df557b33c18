"""Writers for the run folder that docs/evidence.md defines (and nothing else goes in it).

Each writer owns one file, writes as the run goes, and has a `close()` that is safe to call
twice. The recordings' writer (`pipeline.recording.wav`) patches its header every 100 ms of
audio, so the file on disk is a valid WAV even if the process is killed (missing at most that
last 100 ms), and turns it into RF64 past the RIFF format's 4 GiB.
"""

from __future__ import annotations

import array
import csv
import dataclasses
import io
import json
import os
import secrets
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

# The contract's one definition (echoproof.contract), re-exported: the run writes by these names.
from echoproof.contract import (
    BURSTS_HEADER,
    FRAME_SAMPLES,
    TIMING_HEADER,
    TRANSCRIPT_FIELDS,
    UTTERANCES_HEADER,
)
from echoproof.contract import EVENTS as EVENTS
from echoproof.contract import HOST as HOST
from echoproof.contract import HOST_COLUMNS as HOST_COLUMNS
from echoproof.contract import MANIFEST as MANIFEST
from echoproof.contract import ROLES as ROLES
from echoproof.contract import RTC_SAMPLES as RTC_SAMPLES
from echoproof.contract import RTC_STATS as RTC_STATS
from echoproof.contract import SAMPLE_RATE as SAMPLE_RATE
from echoproof.contract import Manifest as Manifest
from echoproof.contract import arrivals_name as arrivals_name
from echoproof.contract import bursts_name as bursts_name
from echoproof.contract import directions as directions
from echoproof.contract import other as other
from echoproof.contract import sent_name as sent_name
from echoproof.contract import wav_name as wav_name
from pipeline.recording.wav import WavWriter as WavWriter

# CSV rows are flushed in batches: one write per 10 ms frame per file adds up with many pairs.
_CSV_FLUSH_ROWS = 50


def new_run_id(now: datetime | None = None) -> str:
    """`YYYYMMDDTHHMMSSZ-<8 hex>` for a run starting at `now` (UTC)."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


def utc_iso(when: datetime | None = None) -> str:
    """An ISO 8601 UTC time with microseconds and a Z, as the manifest writes times."""
    when = when or datetime.now(UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to `path` through a temporary file and `os.replace`, so readers never see half."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class _CsvRows:
    """A CSV file with a header, its rows written in batches of `batch` (one flush per batch)."""

    def __init__(self, path: Path, header: tuple[str, ...], batch: int) -> None:
        self.path = path
        self.rows = 0
        self._batch = batch
        self._file: io.TextIOWrapper | None = path.open("w", encoding="utf-8", newline="")
        self._csv = csv.writer(self._file, lineterminator="\n")
        self._csv.writerow(header)
        self._file.flush()
        self._held: list[tuple[object, ...]] = []

    def _append(self, row: tuple[object, ...]) -> None:
        if self._file is None:
            raise ValueError(f"{self.path.name} is closed")
        self._held.append(row)
        self.rows += 1
        if len(self._held) >= self._batch:
            self.flush()

    def flush(self) -> None:
        """Write the rows held back so far and flush them to the file."""
        if self._file is None or not self._held:
            return
        self._csv.writerows(self._held)
        self._held.clear()
        self._file.flush()

    def close(self) -> None:
        """Flush and close; safe to call twice."""
        if self._file is None:
            return
        try:
            self.flush()
        finally:
            f, self._file = self._file, None
            f.close()


class TimingWriter(_CsvRows):
    """`frame,sample,samples,t_ns` rows: one per frame sent or received."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, TIMING_HEADER, _CSV_FLUSH_ROWS)

    def write(self, frame: int, sample: int, samples: int, t_ns: int) -> None:
        """Append one frame's row."""
        self._append((frame, sample, samples, t_ns))


class BurstsWriter(_CsvRows):
    """`burst,freq_hz,start_sample,samples` rows: the bursts whose every frame was sent."""

    def __init__(self, path: Path) -> None:
        # Bursts are rare: each row reaches the file at once.
        super().__init__(path, BURSTS_HEADER, 1)

    def write(self, burst: int, freq_hz: float, start_sample: int, samples: int) -> None:
        """Append one burst."""
        self._append((burst, f"{freq_hz:g}", start_sample, samples))

    def record(self, b: Any) -> None:
        """Append one `pipeline.tones.schedule.Burst` (a speaker's send loop calls this)."""
        self.write(b.id, b.freq_hz, b.start_sample, b.samples)


class ClockedTimingWriter(TimingWriter):
    """A sender's `TimingWriter` that also keeps each frame's `t_ns`, so that a turn's send times
    can be written the moment its last frame was sent (frames of FRAME_SAMPLES each)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.t_ns = array.array("q")  # 8 bytes a frame: 2.9 MB an hour, not a list's 14

    def write(self, frame: int, sample: int, samples: int, t_ns: int) -> None:
        """Append one frame's row and keep its time."""
        super().write(frame, sample, samples, t_ns)
        self.t_ns.append(t_ns)

    def time_at(self, position: int, *, end: bool = False) -> int:
        """When sample `position` left: its frame's `t_ns` plus its offset in the frame. With
        `end`, `position` is one past a last sample, timed from the frame holding that sample."""
        frame = (position - 1 if end else position) // FRAME_SAMPLES
        return self.t_ns[frame] + round((position - frame * FRAME_SAMPLES) * 1e9 / SAMPLE_RATE)


class Spoken(Protocol):
    """What the turns file says of an utterance (`pipeline.agent.utterances.Utterance`)."""

    @property
    def source(self) -> str: ...

    @property
    def sha256(self) -> str: ...

    @property
    def text(self) -> str: ...

    @property
    def phone(self) -> bool: ...

    @property
    def barge_in_after_ms(self) -> float | None: ...

    @property
    def noise(self) -> Any: ...  # None, or with `kind` and `snr_db`


class UtterancesWriter(_CsvRows):
    """`<sender>.utterances.csv`: one row per turn said to the agent, once all of it was sent."""

    def __init__(self, path: Path, utterances: Sequence[Spoken], clock: ClockedTimingWriter):
        super().__init__(path, UTTERANCES_HEADER, 1)
        self._utterances = utterances
        self._clock = clock

    def record(self, turn: Any) -> None:
        """Append one `pipeline.agent.utterances.Turn` with the send times of its file and of
        its speech, and how it was said."""
        u = self._utterances[turn.utterance]
        time_at = self._clock.time_at
        noise = u.noise
        self._append(
            (
                turn.id, u.source, u.sha256, turn.start_sample, turn.samples,
                time_at(turn.start_sample), time_at(turn.end_sample, end=True),
                turn.speech_start_sample, turn.speech_samples,
                time_at(turn.speech_start_sample), time_at(turn.speech_end_sample, end=True),
                _cell(u.barge_in_after_ms), _cell(turn.barge_in_heard_ns),
                "" if noise is None else noise.kind, "" if noise is None else _cell(noise.snr_db),
                int(u.phone), u.text,
            )
        )  # fmt: skip


def _cell(value: float | None) -> str:
    """A number as the CSV holds it (an integer without a point); None as an empty cell."""
    return (
        "" if value is None else format(value, ".10g") if isinstance(value, float) else str(value)
    )


class HostWriter(_CsvRows):
    """`host.csv`: one row per window of host figures (pipeline.recording.host), each on disk at
    once."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, HOST_COLUMNS, 1)

    def write(self, t_ns: int, figures: list[float | None]) -> None:
        """Append one window: its end and its figures (None: not measured, an empty cell)."""
        self._append((t_ns, *("" if v is None else f"{v:.3f}" for v in figures)))


class _JsonLines:
    """A file of one JSON object per line, each line flushed at once (a killed run keeps every
    line written); lines written once closed are dropped (late SDK callbacks)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines = 0
        self._file: io.TextIOWrapper | None = path.open("w", encoding="utf-8")

    def _put(self, record: dict[str, Any]) -> None:
        if self._file is None:
            return
        self._file.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
        self._file.flush()
        self.lines += 1

    def close(self) -> None:
        """Close; safe to call twice."""
        f, self._file = self._file, None
        if f is not None:
            f.close()


class EventLog(_JsonLines):
    """`events.jsonl`: one `{"t_ns", "agent", "event", ...}` object per line. The events are
    also kept (room events: a handful per participant, not per frame)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.events: list[dict[str, Any]] = []

    def write(self, agent: str, event: str, **fields: Any) -> None:
        """Record one event now."""
        if self._file is None:
            return
        record = {"t_ns": time.monotonic_ns(), "agent": agent, "event": event, **fields}
        self.events.append(record)
        self._put(record)


class TranscriptLog(_JsonLines):
    """`customer.transcripts.jsonl`: one object of `TRANSCRIPT_FIELDS` per text stream
    received."""

    def write(self, **fields: Any) -> None:
        """Append one stream."""
        self._put({name: fields[name] for name in TRANSCRIPT_FIELDS})


class StatsSamples(_JsonLines):
    """`rtc-stats-samples.jsonl`: one `{"t_ns", "role", ...}` object per sample of a speaker's
    RTC statistics, on disk as taken: a long run's samples are not held in memory."""

    def write(self, role: str, t_ns: int, stats: dict[str, Any]) -> None:
        """Append one sample of `role`'s statistics, taken at `t_ns`."""
        self._put({"t_ns": t_ns, "role": role, **stats})


class ManifestFile:
    """`manifest.json` (the contract's `Manifest`): written with status "running" at the start,
    rewritten atomically when the run ends."""

    def __init__(self, path: Path, manifest: Manifest) -> None:
        self.path = path
        self.manifest = dataclasses.replace(manifest, status="running", reason=None, ended_at=None)
        write_json_atomic(path, self.manifest.to_json())

    def finish(self, status: str, reason: str | None, **fields: Any) -> None:
        """Record how the run ended: `complete`, `interrupted` or `failed` (one sentence why),
        with the manifest's `fields` known only then (`realtime`, `agent`)."""
        self.manifest = dataclasses.replace(
            self.manifest, **fields, status=status, reason=reason, ended_at=utc_iso()
        )
        write_json_atomic(self.path, self.manifest.to_json())


def no_rtc_stats(roles: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """`rtc-stats.json` before any statistics were taken: per role, the final ones (the samples
    are `RTC_SAMPLES`')."""
    return {r: {"final": {"publisher_stats": [], "subscriber_stats": []}} for r in roles}


def versions() -> dict[str, str]:
    """Versions of what made the evidence."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str] = {}
    for key, dist in (
        ("echoproof", "echoproof"),
        ("livekit", "livekit"),
        ("livekit_api", "livekit-api"),
    ):
        try:
            out[key] = version(dist)
        except PackageNotFoundError:
            out[key] = "unknown"
    out["python"] = platform.python_version()
    return out
