"""Every figure of a run, computed from its evidence alone.

Definitions: docs/measurements.md. Per direction: frames and PCM bytes sent and received;
the tone heard; bursts sent, detected, truncated, lost, late, repeated; mouth-to-ear latency per
burst; glitches inside bursts; gaps (audio of heard bursts not heard, see `verify._gaps`);
and, under their own names, the SDK's RTP statistics (with the receiver's jitter-buffer delay);
with a probe in the run, how it sounds (`quality`: ViSQOL MOS per segment, pitch; `verify.quality`).

Latency. The send time of a burst's onset is that of sample `start_sample + ref` of the
sender's stream, where `ref` is where `dsp.detect_bursts` puts the onset of the clean `dsp.burst`
waveform (so the detector's own bias cancels); the receive time of a detected onset is found by
both methods of `verify.timing` (`raw`, and `fit`: the headline).

Structure. Per direction (`_direction`): read the evidence (`_read_direction`), detect the
bursts (`dsp.detect_bursts`), time the onsets (`_times`), match detections to scheduled bursts
(`verify._matching`: detected, late, repeated, fragment, unexpected), classify each burst
(`verify._classify`: detected, truncated, late, lost, outside_recording, with the rule for
truncated), then the figures of each burst (`_burst_figures`) and of the direction
(`_direction_figures`), with glitches (`_glitches`) and gaps (`verify._gaps`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

import dsp
from dsp.source import Source
from verify import evidence as ev
from verify import progress, quality
from verify._classify import BurstStates, classify, detection_states
from verify._gaps import GAP_BLOCK, find_gaps
from verify._matching import Matches, match_detections
from verify.conversation_figures import conversation
from verify.errors import EvidenceError
from verify.host import disturbances
from verify.host import summary as host_summary
from verify.thresholds import AgentThresholds, Thresholds
from verify.timing import (
    NS_PER_MS,
    NS_PER_S,
    fit_time_ns,
    frame_time_ns,
    latency_stats,
    no_frames,
    round_stable,
    rounded,
    run_seconds,
)

PROCESS_POOL_BYTES = 100 * 1024 * 1024  # received audio above which directions get processes
HEADLINE_METHOD = "fit"
GLITCH_BLOCK = GAP_BLOCK  # glitches are runs of the gaps' 5 ms blocks
GLITCH_RATIO = 0.5  # a block below half the burst's median RMS (-6 dB) is low: a glitch
# the manifest's fields the report repeats, in the report's order
RUN_FIELDS = (
    "run_id",
    "room",
    "server_url",
    "started_at",
    "ended_at",
    "duration_s",
    "status",
    "reason",
    "mode",
)

FloatArray = npt.NDArray[np.float64]


@dataclasses.dataclass(frozen=True)
class DirectionDetail:
    """What the plots need beyond the figures: where each detection was found, and its state."""

    label: str
    wav: str  # the received WAV's file name (the plots read it again)
    onsets: FloatArray  # every detection's onset (received sample index)
    states: list[str]  # per detection: detected, truncated, late, repeated, fragment, unexpected
    rechecked: list[int] | None = None  # the probe's segments scored again, when a sample


@dataclasses.dataclass(frozen=True)
class Analysis:
    """The figures (JSON-ready) and the details for plots."""

    figures: dict[str, Any]
    details: list[DirectionDetail]
    # per direction label whose probe was re-checked on a sample: the segments scored again
    rechecked: dict[str, list[int]] = dataclasses.field(default_factory=dict)


def analyse(run_dir: str | Path, thresholds: Thresholds | None = None) -> dict[str, Any]:
    """Every figure of the run in `run_dir`, from its evidence alone.

    Thresholds default to `config.thresholds` of the manifest merged over :class:`Thresholds`'
    defaults (they set the matching window). Raises :class:`EvidenceError` on bad evidence.
    """
    return analyse_run(Path(run_dir), thresholds).figures


def thresholds_of(manifest: ev.Manifest) -> Thresholds:
    """The thresholds a run declares: `config.thresholds` over the defaults."""
    return Thresholds.from_dict(_declared_thresholds(manifest))


def _declared_thresholds(manifest: ev.Manifest) -> Any:
    """The manifest's `config.thresholds`, for both kinds of thresholds (None: the defaults)."""
    return (manifest.config or {}).get("thresholds")


def analyse_run(
    run_dir: Path, thresholds: Thresholds | None = None, recheck: quality.Recheck | None = None
) -> Analysis:
    """:func:`analyse`, also returning the details the plots need; with `recheck`, the probe's
    segments are scored again on its sample, the others carried from the signed report."""
    manifest = ev.read_manifest(run_dir)
    if thresholds is None:
        thresholds = thresholds_of(manifest)
    complete = manifest.status == "complete"
    missing = [n for n in ev.evidence_names(manifest) if not (run_dir / n).is_file()]
    stats = _rtc_stats(run_dir, missing)
    events = [] if ev.EVENTS in missing else ev.read_events(run_dir / ev.EVENTS)
    results = _analyse_directions(run_dir, manifest, thresholds, stats, missing, complete, recheck)
    directions = [figures for figures, _ in results]
    host = _host(run_dir, manifest, missing, complete)
    for d in directions:
        disturbed = disturbances(host, d["bursts"])
        d["disturbed"] = [x.to_dict() for x in disturbed]
        if "quality" in d:
            quality.judge(d["quality"], disturbed)
    figures = {
        **{field: getattr(manifest, field) for field in RUN_FIELDS},
        "directions": directions,
        "missing": missing,
        "events": _event_counts(events),
        "latency_method": HEADLINE_METHOD,
        "thresholds": thresholds.to_dict(),
        "host": host,
    }
    if ev.agent_files(manifest) is not None:
        limits = AgentThresholds.from_dict(_declared_thresholds(manifest))
        figures["conversation"] = {
            **conversation(run_dir, manifest, missing, complete, clock_origin(manifest)),
            "thresholds": limits.to_dict(),
        }
    details = [detail for _, detail in results]
    rechecked = {d.label: d.rechecked for d in details if d.rechecked is not None}
    return Analysis(figures=figures, details=details, rechecked=rechecked)


def _rtc_stats(run_dir: Path, missing: list[str]) -> dict[str, Any]:
    """The SDK's statistics (`rtc-stats.json`); none when the file is missing."""
    if ev.RTC_STATS in missing:
        return {}
    loaded = ev.read_json(run_dir / ev.RTC_STATS)
    if not isinstance(loaded, dict):
        raise EvidenceError(f"{ev.RTC_STATS} holds {type(loaded).__name__}, expected an object")
    return loaded


def _analyse_directions(
    run_dir: Path,
    manifest: ev.Manifest,
    thresholds: Thresholds,
    stats: dict[str, Any],
    missing: list[str],
    complete: bool,
    recheck: quality.Recheck | None,
) -> list[tuple[dict[str, Any], DirectionDetail]]:
    """Every direction's figures and plot details, in the manifest's order."""
    all_files = ev.direction_files(manifest)
    # One BLAS thread: the directions already run side by side, the products are small, and a
    # BLAS thread pool alive at fork time made the forked workers spin (1 h run: 30 s instead
    # of 3 s, after an earlier long product in the same process had started the pool).
    with threadpool_limits(limits=1, user_api="blas"):
        return _map_directions(
            [
                (
                    run_dir,
                    files,
                    manifest,
                    thresholds,
                    stats,
                    missing,
                    complete,
                    None if recheck is None else recheck.sample(files.label),
                )
                for files in all_files
            ],
            # scoring the probe is seconds of numba work per direction, holding the GIL
            long_run=_received_bytes(run_dir, all_files, missing) > PROCESS_POOL_BYTES
            or manifest.probe is not None,
        )


def _host(
    run_dir: Path, manifest: ev.Manifest, missing: list[str], complete: bool
) -> dict[str, Any]:
    """The report's `host` block, from `host.csv` when the run has one (`verify.host`)."""
    name = ev.host_file(manifest)
    table = None
    if name is not None and name not in missing:
        table = ev.read_host(run_dir / name, partial_tail=not complete)
    return host_summary(table, clock_origin(manifest), _scheduling(manifest))


def _received_bytes(run_dir: Path, all_files: list[ev.DirectionFiles], missing: list[str]) -> int:
    return sum((run_dir / f.wav).stat().st_size for f in all_files if f.wav not in missing)


def _direction_task(args: tuple[Any, ...]) -> tuple[dict[str, Any], DirectionDetail]:
    return _direction(*args)


def _map_directions(
    tasks: list[tuple[Any, ...]], *, long_run: bool
) -> list[tuple[dict[str, Any], DirectionDetail]]:
    """Analyse the directions side by side: they are independent.

    Threads for short runs. Long runs spend seconds in the detector, whose Python-level steps
    hold the GIL, so there each direction gets a forked process (it inherits the compiled
    kernels; only figures and onsets travel back).
    """
    if len(tasks) < 2:
        return [_direction_task(t) for t in tasks]
    if long_run and "fork" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("fork")
        # Load the jitted kernels here once, so that each forked child inherits them rather
        # than reading numba's cache again (about half a second each).
        _reference_onset(440.0, 0.3, 0.005, 0.5)
        with ProcessPoolExecutor(max_workers=len(tasks), mp_context=context) as pool:
            return list(pool.map(_direction_task, tasks))
    with ThreadPoolExecutor(max_workers=len(tasks)) as pool:
        return list(pool.map(_direction_task, tasks))


def _event_counts(events: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for event in events:
        name = str(event.get("event"))
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))


@dataclasses.dataclass(frozen=True)
class _Evidence:
    """One direction's evidence, cut to what both the WAV and the arrivals cover."""

    samples: ev.Recording  # what the receiver heard, read a stretch at a time
    arrivals: ev.Timing
    sent: ev.Timing
    schedule: ev.Schedule


@dataclasses.dataclass(frozen=True)
class _Times:
    """Send and receive times (monotonic ns) of the bursts' onsets and the detections' onsets."""

    sent: FloatArray  # per burst
    raw: FloatArray  # per detection: the frame's arrival plus the offset
    fit: FloatArray  # per detection: the line through the neighbouring frames' arrivals

    @property
    def arrived(self) -> FloatArray:
        """Per detection, the headline receive time."""
        return self.fit if HEADLINE_METHOD == "fit" else self.raw


def _direction(
    run_dir: Path,
    files: ev.DirectionFiles,
    manifest: ev.Manifest,
    thresholds: Thresholds,
    stats: dict[str, Any],
    missing: list[str],
    complete: bool,
    sample: tuple[frozenset[int], list[dict[str, Any]]] | None = None,
) -> tuple[dict[str, Any], DirectionDetail]:
    """One direction's figures: detect, time, match, classify, then the figures of each burst
    and of the direction; `sample`: the probe's segments to score again and the signed ones to
    carry (`quality.Recheck`), None to score all."""
    path = None if files.wav in missing else run_dir / files.wav
    with ev.Recording(path) as heard:  # read a stretch at a time, never whole
        evidence = _read_direction(run_dir, files, missing, complete, heard)
        tone_hz = float(manifest.participants[files.sender]["tone_hz"])
        burst_params = manifest.burst
        ref = _reference_onset(
            tone_hz,
            float(burst_params["duration_s"]),
            float(burst_params["ramp_s"]),
            float(burst_params["amplitude"]),
        )
        pieces = _pieces(run_dir, files, manifest, evidence.sent)
        progress.expect(progress.work(evidence.samples.size, _to_score(pieces, sample)))
        found = (
            _detect(evidence.samples, tone_hz, burst_params, progress.scanned())
            if evidence.samples.size
            else []
        )
        onsets = np.array([b.onset for b in found], dtype=np.float64)
        times = _times(evidence, ref, onsets)
        window_ns = thresholds.match_window_ms * NS_PER_MS
        schedule = evidence.schedule
        matches = match_detections(times.sent, times.arrived, onsets, schedule.samples, window_ns)
        bursts = classify(
            matches,
            _first_latency_ms(times, matches),
            np.array([b.duration for b in found], dtype=np.float64),
            schedule.samples,
            _outside_recording(evidence.arrivals, times.sent, window_ns),
            ev.SAMPLE_RATE,
        )
        glitches = _burst_glitches(evidence.samples, onsets, bursts, schedule, burst_params)
        origin = clock_origin(manifest)
        gaps = _gaps(evidence, tone_hz, burst_params, onsets, bursts, ref, origin)
        per_burst = _burst_figures(schedule, found, times, matches, bursts, glitches, origin)
        figures = _direction_figures(
            files, evidence, tone_hz, ref, found, times, matches, bursts, glitches, gaps, stats
        )
        figures["bursts"] = per_burst
        if manifest.probe is not None:
            figures["quality"] = _quality(
                run_dir, manifest, pieces, evidence, found, bursts, ref, origin, sample
            )
        states = detection_states(matches, bursts)
        detail = DirectionDetail(
            label=files.label,
            wav=files.wav,
            onsets=onsets,
            states=states,
            rechecked=None if sample is None else sorted(sample[0]),
        )
        return figures, detail


def _read_direction(
    run_dir: Path, files: ev.DirectionFiles, missing: list[str], complete: bool, heard: ev.Recording
) -> _Evidence:
    """The direction's evidence around its recording `heard`; a missing file reads as an empty
    one (the verdict says it is missing). A killed writer's WAV and arrivals are cut to the part
    both cover."""

    def get(name: str, read: Any, empty: Any) -> Any:
        return empty if name in missing else read(run_dir / name)

    read_timing = functools.partial(ev.read_timing, partial_tail=not complete)
    arrivals = get(files.arrivals, read_timing, no_frames())
    sent = get(files.sent, read_timing, no_frames())
    schedule = get(files.bursts, ev.read_schedule, ev.read_schedule_empty())
    strict = complete and files.wav not in missing and files.arrivals not in missing
    arrivals = ev.common_part(
        heard.size, arrivals, strict=strict, wav=files.wav, timing=files.arrivals
    )
    heard.cut(arrivals.total_samples)
    if files.sent in missing:
        schedule = ev.read_schedule_empty()  # no send times: no burst can be timed
    if len(schedule) and (
        not len(sent) or schedule.start_sample[-1] + schedule.samples[-1] > sent.total_samples
    ):
        raise EvidenceError(
            f"{files.bursts} lists a burst ending at sample "
            f"{int(schedule.start_sample[-1] + schedule.samples[-1])} but {files.sent} covers "
            f"{sent.total_samples} samples, expected every listed burst to be sent"
        )
    return _Evidence(samples=heard, arrivals=arrivals, sent=sent, schedule=schedule)


def _times(evidence: _Evidence, ref: float, onsets: FloatArray) -> _Times:
    """When each burst's onset left (its sample `start_sample + ref`), when each detection's
    onset arrived (both methods)."""
    positions = evidence.schedule.start_sample.astype(np.float64) + ref
    return _Times(
        sent=frame_time_ns(evidence.sent, positions),
        raw=frame_time_ns(evidence.arrivals, onsets),
        fit=fit_time_ns(evidence.arrivals, onsets),
    )


def _outside_recording(
    arrivals: ev.Timing, sent_ns: FloatArray, window_ns: float
) -> npt.NDArray[np.bool_]:
    """Per burst, whether its matching window lies outside the receiver's recording."""
    if not len(arrivals):
        return np.ones(sent_ns.size, dtype=bool)
    first_t, last_t = int(arrivals.t_ns[0]), int(arrivals.t_ns[-1])
    return np.asarray((sent_ns < first_t) | (sent_ns + window_ns > last_t), dtype=bool)


def _first_latency_ms(times: _Times, matches: Matches) -> FloatArray:
    """Per burst, the latency in ms of its first detection (on time or late); NaN: none."""
    first = matches.first
    out = np.full(first.size, np.nan)
    heard = first >= 0
    out[heard] = (times.arrived[first[heard]] - times.sent[heard]) / NS_PER_MS
    return out


def _timed_latency_ms(times: _Times, matches: Matches, bursts: BurstStates) -> FloatArray:
    """Per burst, the (fit, raw) latency in ms of a detected burst; NaN for the others."""
    out = np.full((2, bursts.detected.size), np.nan)
    idx = matches.on_time[bursts.detected]
    for row, arrived in enumerate((times.fit, times.raw)):
        out[row, bursts.detected] = (arrived[idx] - times.sent[bursts.detected]) / NS_PER_MS
    return out


def _burst_glitches(
    samples: ev.Recording,
    onsets: FloatArray,
    bursts: BurstStates,
    schedule: ev.Schedule,
    burst_params: dict[str, Any],
) -> npt.NDArray[np.int64]:
    """Per heard burst (in burst order), its glitches (see `_glitches`)."""
    heard = bursts.heard
    # a truncated burst's glitches are looked for in the part it was heard, not past its end
    lengths = np.where(bursts.truncated, np.floor(bursts.heard_samples), schedule.samples)
    return _glitches(
        samples,
        onsets[bursts.first[heard]],
        lengths.astype(np.int64)[heard],
        burst_params,
        bursts.truncated[heard],
    )


def _burst_figures(
    schedule: ev.Schedule,
    found: list[dsp.Burst],
    times: _Times,
    matches: Matches,
    bursts: BurstStates,
    glitches: npt.NDArray[np.int64],
    origin: int,
) -> list[dict[str, Any]]:
    """One report entry per scheduled burst: state, send time, and what was measured of it."""
    lat_fit, lat_raw = _timed_latency_ms(times, matches, bursts)
    glitches_of = dict(zip(np.flatnonzero(bursts.heard).tolist(), glitches.tolist(), strict=True))
    entries = []
    for i in range(len(schedule)):
        # when its onset left the sender, on the run's clock (the host's stalls are on it too);
        # rounded as a float64, unlike `run_seconds`: numpy's rounding, as signed reports have it
        entry: dict[str, Any] = {
            "burst": int(schedule.burst[i]),
            "sent_s": rounded((times.sent[i] - origin) / NS_PER_S, 6),
            "state": bursts.name(i),
        }
        if bursts.heard[i]:
            d = found[int(bursts.first[i])]
            entry["onset_sample"] = rounded(float(d.onset), 3)
            if bursts.detected[i]:
                entry["latency_ms"] = rounded(float(lat_fit[i]), 4)
                entry["latency_raw_ms"] = rounded(float(lat_raw[i]), 4)
            entry["level_dbfs"] = rounded(float(d.level_dbfs), 3)
            entry["snr_db"] = rounded(float(d.snr_db), 3)
            entry["glitches"] = glitches_of[i]
        elif bursts.late[i]:
            late_ns = times.arrived[matches.late[i]] - times.sent[i]
            entry["latency_ms"] = rounded(float(late_ns / NS_PER_MS), 4)
        entries.append(entry)
    return entries


def _direction_figures(
    files: ev.DirectionFiles,
    evidence: _Evidence,
    tone_hz: float,
    ref: float,
    found: list[dsp.Burst],
    times: _Times,
    matches: Matches,
    bursts: BurstStates,
    glitches: npt.NDArray[np.int64],
    gaps: list[dict[str, Any]],
    stats: dict[str, Any],
) -> dict[str, Any]:
    """The direction's figures (without its per-burst entries)."""
    arrivals, sent = evidence.arrivals, evidence.sent
    lat_fit, lat_raw = _timed_latency_ms(times, matches, bursts)
    heard = [found[int(k)] for k in bursts.first[bursts.heard]]
    gap_ms = [g["duration_ms"] for g in gaps]
    frames_sent = len(sent)
    return {
        "from": files.sender,
        "to": files.receiver,
        "files": {
            "wav": files.wav,
            "arrivals": files.arrivals,
            "sent": files.sent,
            "bursts": files.bursts,
        },
        "frames_sent": frames_sent,
        "frames_received": len(arrivals),
        "frames_received_share": rounded(len(arrivals) / frames_sent, 6) if frames_sent else None,
        "bytes_sent": ev.SAMPLE_WIDTH * sent.total_samples,
        "bytes_received": ev.SAMPLE_WIDTH * arrivals.total_samples,
        "samples_received": int(evidence.samples.size),
        "tone_expected_hz": tone_hz,
        "tone_hz": _median([b.freq_hz for b in heard], 3),
        "level_dbfs": _median([b.level_dbfs for b in heard], 3),
        "snr_db": _median([b.snr_db for b in heard], 3),
        "bursts_sent": len(evidence.schedule),
        "bursts_detected": int(bursts.detected.sum()),
        "bursts_truncated": int(bursts.truncated.sum()),
        "bursts_lost": int(bursts.lost.sum()),
        "bursts_late": int(bursts.late.sum()),
        "bursts_repeated": matches.repeated,
        "bursts_outside_recording": int(bursts.outside.sum()),
        "detections_unexpected": matches.unexpected,
        "glitches": int(glitches.sum()) + matches.fragments,
        "bursts_with_glitches": int((glitches > 0).sum()),
        "gaps": gaps,
        "gap_total_ms": rounded(sum(gap_ms), 3) if gap_ms else 0.0,
        "gap_max_ms": max(gap_ms) if gap_ms else 0.0,
        "onset_reference_samples": rounded(ref, 4),
        "latency_ms": {**latency_stats(lat_fit[bursts.detected]), "method": "fit"},
        "latency_raw_ms": {**latency_stats(lat_raw[bursts.detected]), "method": "raw"},
        "arrival_interval_ms": _arrival_intervals(arrivals),
        "rtc": _rtc(stats, files.receiver, files.sender),
    }


def _arrival_intervals(arrivals: ev.Timing) -> dict[str, float | None]:
    """The time between consecutive received frames (ms): median, p99, max."""
    interval = np.diff(arrivals.t_ns) / NS_PER_MS if len(arrivals) > 1 else np.zeros(0)
    return {
        "median": rounded(float(np.median(interval)), 4) if interval.size else None,
        "p99": rounded(float(np.percentile(interval, 99)), 4) if interval.size else None,
        "max": rounded(float(interval.max()), 4) if interval.size else None,
    }


def _pieces(
    run_dir: Path, files: ev.DirectionFiles, manifest: ev.Manifest, sent: ev.Timing
) -> quality.Pieces | None:
    """The probe's pieces the sender sent (`<sender>.probe.csv`, cut to what it sent); None when
    the run has no probe or a probe file is missing (the verdict says it is missing)."""
    probe = manifest.probe
    if probe is None:
        return None
    names = (probe["file"], probe["pieces"].get(files.sender))
    if any(name is None or not (run_dir / name).is_file() for name in names):
        return None
    pieces = quality.Pieces(*ev.read_pieces(run_dir / names[1]))
    ends = pieces.start_sample + pieces.samples
    return pieces.first(int(np.searchsorted(ends, sent.total_samples, "right")))


def _to_score(
    pieces: quality.Pieces | None, sample: tuple[frozenset[int], list[dict[str, Any]]] | None
) -> int:
    """How many probe segments the direction will score: its sample's, else every segment's
    (an estimate, for progress: the short ones are skipped)."""
    if pieces is None:
        return 0
    return pieces.segments if sample is None else len(sample[0])


def _quality(
    run_dir: Path,
    manifest: ev.Manifest,
    pieces: quality.Pieces | None,
    evidence: _Evidence,
    found: list[dsp.Burst],
    bursts: BurstStates,
    ref: float,
    origin: int,
    sample: tuple[frozenset[int], list[dict[str, Any]]] | None,
) -> dict[str, Any]:
    """The probe's score in this direction: the pieces the sender sent, placed in the recording
    by the detected bursts (see `verify.quality`); with `sample`, only its segments, the signed
    others carried. A missing probe file scores nothing (the verdict says it is missing)."""
    probe = manifest.probe
    assert probe is not None  # the caller looked
    if pieces is None:
        return quality.figures([], float(probe["segment_s"]))
    signal = ev.read_wav(run_dir / probe["file"])
    quality.check_probe(signal, probe["file"])
    detected = bursts.detected
    at = (evidence.schedule.start_sample[detected] + ref).astype(np.float64)
    onsets = np.array([found[int(k)].onset for k in bursts.first[detected]], dtype=np.float64)
    only, carried = (None, []) if sample is None else sample
    segments = quality.score(
        evidence.samples,
        signal,
        pieces,
        (at, onsets - at),
        ev.SAMPLE_RATE,
        only,
        on_segment=lambda: progress.done(progress.work(0, 1)),
    )
    for entry in segments:
        start = pieces.start_sample[np.argmax(pieces.segment == entry["segment"])]
        sent_ns = frame_time_ns(evidence.sent, np.array([float(start)]))[0]
        entry["sent_s"] = run_seconds(sent_ns, origin)
    segments += [{k: s[k] for k in quality.SEGMENT_FIELDS} for s in carried]
    return quality.figures(segments, float(probe["segment_s"]))


def _median(values: Sequence[float], digits: int) -> float | None:
    return rounded(float(np.median(values)), digits) if len(values) else None


@functools.lru_cache(maxsize=16)
def _reference_onset(tone_hz: float, duration_s: float, ramp_s: float, amplitude: float) -> float:
    """Where the detector puts the onset of the clean burst waveform (its sample 0 is at 0)."""
    pad = ev.SAMPLE_RATE // 10
    wave = dsp.burst(tone_hz, duration_s, ev.SAMPLE_RATE, amplitude=amplitude, ramp_s=ramp_s)
    padded = np.concatenate((np.zeros(pad, np.int16), wave, np.zeros(pad, np.int16)))
    found = _detect(padded, tone_hz, {"ramp_s": ramp_s, "duration_s": duration_s})
    if len(found) != 1:
        raise EvidenceError(
            f"the detector finds {len(found)} bursts in the clean {tone_hz} Hz burst of the "
            "manifest's parameters, expected exactly 1"
        )
    # rounded to 1e-4 sample: numerical noise must not move a frame-aligned onset into the
    # previous frame (floor(23999.999999) picks another frame, with its own send time)
    return round_stable(float(found[0].onset) - pad, 4)


def _detect(
    samples: npt.NDArray[np.int16] | Source,
    tone_hz: float,
    params: dict[str, Any],
    on_progress: Callable[[int], None] | None = None,
) -> list[Any]:
    """`dsp.detect_bursts` with the sender's ramp and nominal duration (the manifest's)."""
    try:
        return list(
            dsp.detect_bursts(
                samples,
                ev.SAMPLE_RATE,
                tone_hz,
                ramp_s=float(params["ramp_s"]),
                duration_s=float(params["duration_s"]),
                progress=on_progress,
            )
        )
    except dsp.DspError as exc:
        raise EvidenceError(f"the manifest's burst parameters are unusable: {exc}") from None


def _glitches(
    samples: Source,
    onsets: FloatArray,
    lengths: npt.NDArray[np.int64],
    burst_params: dict[str, Any],
    truncated: npt.NDArray[np.bool_],
) -> npt.NDArray[np.int64]:
    """Per heard burst, the runs of 5 ms blocks inside its plateau below half its median RMS.

    A truncated burst's missing start is one more (merged with a low run where its heard part
    begins: the stream fading in after the outage).
    """
    out = truncated.astype(np.int64)
    ramp = _ramp_samples(burst_params)
    for k, (onset, length) in enumerate(zip(onsets, lengths, strict=True)):
        start = math.ceil(onset) + ramp
        stop = min(int(onset) + int(length) - ramp, samples.size)
        blocks = (stop - start) // GLITCH_BLOCK
        if blocks < 2:
            continue
        seg = samples.read(start, start + blocks * GLITCH_BLOCK).astype(np.float32)
        rows = seg.reshape(blocks, GLITCH_BLOCK)
        energy = np.einsum("ij,ij->i", rows, rows)  # RMS ratio r <=> energy ratio r**2
        low = energy < GLITCH_RATIO**2 * np.median(energy)
        leading = 1 if truncated[k] else int(low[0])
        out[k] = int(np.count_nonzero(low[1:] & ~low[:-1]) + leading)
    return out


def _ramp_samples(burst_params: dict[str, Any]) -> int:
    """Samples from a burst's start (or before its end) to its plateau's first (last) whole
    block, where glitches and gaps are looked for: the ramp, and one block more."""
    return math.ceil(float(burst_params["ramp_s"]) * ev.SAMPLE_RATE) + GAP_BLOCK


def _gaps(
    evidence: _Evidence,
    tone_hz: float,
    burst_params: dict[str, Any],
    onsets: FloatArray,
    bursts: BurstStates,
    ref: float,
    origin: int,
) -> list[dict[str, Any]]:
    """The direction's gaps as report entries: start on the run's clock, length, burst.

    Heard bursts are examined: detected ones placed by their own onsets, truncated ones by their
    neighbours' (`verify._gaps`).
    """
    schedule = evidence.schedule
    detected = bursts.detected
    starts = schedule.start_sample.astype(np.int64)
    offsets = np.full(len(schedule), np.nan)
    offsets[detected] = onsets[bursts.first[detected]] - (starts[detected] + ref)
    found = find_gaps(
        evidence.samples,
        tone_hz,
        ev.SAMPLE_RATE,
        ids=schedule.burst.astype(np.int64),
        starts=starts,
        lengths=schedule.samples.astype(np.int64),
        offsets=offsets,
        heard=bursts.heard,
        ramp_samples=_ramp_samples(burst_params),
        fallback_amplitude=float(burst_params["amplitude"]) * 32767.0,
    )
    if not found:
        return []
    t_ns = frame_time_ns(evidence.sent, np.array([g.start_sample for g in found]))
    return [
        {
            "start_s": run_seconds(t, origin),
            "duration_ms": rounded((g.end_sample - g.start_sample) * 1000.0 / ev.SAMPLE_RATE, 3),
            "burst": g.burst,
        }
        for g, t in zip(found, t_ns, strict=True)
    ]


def _scheduling(manifest: ev.Manifest) -> dict[str, Any] | None:
    """How the capture process was scheduled while it talked (`pipeline.recording.realtime`), if
    known."""
    return manifest.realtime  # its kind is checked as the manifest is read


def clock_origin(manifest: ev.Manifest) -> int:
    """The run clock's zero: the manifest's `clock.monotonic_ns`."""
    origin = manifest.clock.get("monotonic_ns")
    if isinstance(origin, bool) or not isinstance(origin, int):
        raise EvidenceError(
            f"{ev.MANIFEST} has clock.monotonic_ns {origin!r}, expected an integer (ns)"
        )
    return origin


def _num(value: Any) -> float | None:
    """A statistic as a number: MessageToDict writes 64-bit integers as strings."""
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _sum(entries: list[dict[str, Any]], group: str, field: str) -> int | None:
    values = [_num(e.get(group, {}).get(field)) for e in entries]
    known = [v for v in values if v is not None]
    return int(sum(known)) if known else None


def _mean_per_sample_ms(entries: list[dict[str, Any]], field: str) -> float | None:
    """A jitter-buffer delay in ms per emitted sample: `field` (seconds summed over every sample
    the buffer emitted, as WebRTC reports it) over `jitter_buffer_emitted_count`."""
    totals = [_num(e.get("inbound", {}).get(field)) for e in entries]
    counts = [_num(e.get("inbound", {}).get("jitter_buffer_emitted_count")) for e in entries]
    pairs = [(t, c) for t, c in zip(totals, counts, strict=True) if t is not None and c]
    if not pairs:
        return None
    return rounded(1000.0 * sum(t for t, _ in pairs) / sum(c for _, c in pairs), 4)


def _rtc(stats: dict[str, Any], receiver: str, sender: str) -> dict[str, Any]:
    """RTP statistics of the SDK: the receiver's inbound audio, the sender's outbound audio.

    `jitter_buffer_ms` / `jitter_buffer_target_ms`: the receiver's mean jitter-buffer delay and
    target delay over every sample it played (None when the SDK does not report them).
    """

    def entries(role: str, side: str, kind: str) -> list[dict[str, Any]]:
        final = stats.get(role, {}).get("final", {}) if isinstance(stats.get(role), dict) else {}
        found = []
        for stat in final.get(side, []) if isinstance(final, dict) else []:
            body = stat.get(kind) if isinstance(stat, dict) else None
            if isinstance(body, dict) and body.get("stream", {}).get("kind") == "audio":
                found.append(body)
        return found

    inbound = entries(receiver, "subscriber_stats", "inbound_rtp")
    outbound = entries(sender, "publisher_stats", "outbound_rtp")
    received = _sum(inbound, "received", "packets_received")
    lost = _sum(inbound, "received", "packets_lost")
    jitters = [_num(e.get("received", {}).get("jitter")) for e in inbound]
    jitter = max((j for j in jitters if j is not None), default=None)
    loss = None
    if received is not None and lost is not None and received + lost > 0:
        loss = rounded(100.0 * max(lost, 0) / (received + max(lost, 0)), 4)
    return {
        "available": bool(inbound),
        "packets_received": received,
        "packets_lost": lost,
        "packet_loss_pct": loss,
        "jitter_ms": None if jitter is None else rounded(jitter * 1000.0, 4),
        "jitter_buffer_ms": _mean_per_sample_ms(inbound, "jitter_buffer_delay"),
        "jitter_buffer_target_ms": _mean_per_sample_ms(inbound, "jitter_buffer_target_delay"),
        "concealed_samples": _sum(inbound, "inbound", "concealed_samples"),
        "concealment_events": _sum(inbound, "inbound", "concealment_events"),
        "total_samples_received": _sum(inbound, "inbound", "total_samples_received"),
        "encoded_bytes_received": _sum(inbound, "inbound", "bytes_received"),
        "packets_sent": _sum(outbound, "sent", "packets_sent"),
        "encoded_bytes_sent": _sum(outbound, "sent", "bytes_sent"),
    }
