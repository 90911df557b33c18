"""The signed report: verdict, canonical JSON, JSON Schema, and writing a run folder's report."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

from verify import evidence as ev
from verify import signing
from verify.conversation_figures import failures as conversation_failures
from verify.figures import analyse_run
from verify.host import Disturbance, Failure, gap_window, latency_window, lost_window
from verify.host import disturbances as host_disturbances
from verify.host import verdict as host_verdict
from verify.quality import failures as quality_failures
from verify.thresholds import AgentThresholds, Thresholds

SCHEMA = "echoproof.report/1"
GENERATOR = "echoproof-verify/0.1.0"


@dataclasses.dataclass(frozen=True)
class ReportResult:
    """What :func:`write_report` wrote: the verdict and the report itself."""

    passed: bool
    status: str  # passed, failed, inconclusive
    failures: list[str]
    reason: str | None  # inconclusive: the host stall, in one line
    report: dict[str, Any]
    path: Path


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8, no NaN: the one byte form of a report."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def report_schema() -> dict[str, Any]:
    """The published JSON Schema of `report.json` (`verify/report.schema.json`)."""
    text = resources.files("verify").joinpath("report.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _fmt(value: float) -> str:
    return f"{value:g}"


def failures_of(figures: dict[str, Any], thresholds: Thresholds, extra: list[str]) -> list[Failure]:
    """Every failed threshold, one line each naming the direction, figure, value and limit, with
    the time windows in which it happened (see `verify.host` for how they are used)."""
    failures: list[Failure] = []

    def never_host(line: str) -> None:
        failures.append(Failure(line, host_may_explain=False))

    if figures["status"] != "complete":
        reason = figures.get("reason") or "no reason recorded"
        never_host(f"run status is {figures['status']}, expected complete: {reason}")
    for name in figures["missing"]:
        never_host(f"evidence file {name} is missing")
    for line in extra:
        never_host(line)
    for d in figures["directions"]:
        label = f"{d['from']}->{d['to']}"
        own = functools.partial(Failure, direction=label)
        if d["bursts_sent"] == 0:
            failures.append(own(f"{label}: bursts sent 0, expected at least 1"))
        share = d["frames_received_share"]
        if share is None or share < thresholds.min_frames_received_share:
            failures.append(
                own(
                    f"{label}: frames received share {_fmt(share or 0)} "
                    f"({d['frames_received']} of {d['frames_sent']}) is below the minimum "
                    f"{_fmt(thresholds.min_frames_received_share)}"
                )
            )
        missed = d["bursts_lost"] + d["bursts_late"]
        if missed > thresholds.max_bursts_lost:
            windows = tuple(
                lost_window(b["sent_s"]) for b in d["bursts"] if b["state"] in ("lost", "late")
            )
            failures.append(
                own(
                    f"{label}: bursts lost {d['bursts_lost']} and late {d['bursts_late']} "
                    f"({missed} of {d['bursts_sent']}) exceed the maximum "
                    f"{thresholds.max_bursts_lost}",
                    windows,
                )
            )
        loss = d["rtc"]["packet_loss_pct"]
        if loss is not None and loss > thresholds.max_packet_loss_pct:
            never_host(
                f"{label}: packet loss {_fmt(loss)} % exceeds the maximum "
                f"{_fmt(thresholds.max_packet_loss_pct)} %"
            )
        latency = d["latency_ms"]
        for key, limit in (
            ("median", thresholds.max_latency_median_ms),
            ("p95", thresholds.max_latency_p95_ms),
        ):
            if latency[key] is not None and latency[key] > limit:
                over = tuple(
                    latency_window(b["sent_s"] + b["latency_ms"] / 1000, b["latency_ms"] - limit)
                    for b in d["bursts"]
                    if b["state"] == "detected" and b["latency_ms"] > limit
                )
                failures.append(
                    own(
                        f"{label}: latency {key} {_fmt(latency[key])} ms exceeds the maximum "
                        f"{_fmt(limit)} ms",
                        over,
                    )
                )
        if d["gap_max_ms"] > thresholds.max_gap_ms:
            longest = max(d["gaps"], key=lambda g: g["duration_ms"])
            windows = tuple(
                gap_window(g["start_s"], g["duration_ms"])
                for g in d["gaps"]
                if g["duration_ms"] > thresholds.max_gap_ms
            )
            failures.append(
                own(
                    f"{label}: gap max {_fmt(d['gap_max_ms'])} ms (at {_fmt(longest['start_s'])} s)"
                    f" exceeds the maximum {_fmt(thresholds.max_gap_ms)} ms",
                    windows,
                )
            )
        failures.extend(quality_failures(label, d.get("quality"), thresholds))
        if d["bursts_detected"] and (d["snr_db"] is None or d["snr_db"] < thresholds.min_snr_db):
            failures.append(
                own(
                    f"{label}: SNR {_fmt(d['snr_db'] or 0)} dB is below the minimum "
                    f"{_fmt(thresholds.min_snr_db)} dB"
                )
            )
    conv = figures.get("conversation")
    if conv is not None:
        limits = AgentThresholds.from_dict(conv["thresholds"])
        for line, at_s in conversation_failures(conv, limits):
            failures.append(
                Failure(line, tuple(lost_window(t) for t in at_s), host_may_explain=bool(at_s))
            )
    return failures


def verdict(figures: dict[str, Any], thresholds: Thresholds, extra: list[str]) -> dict[str, Any]:
    """The report's verdict: `status` passed, failed or inconclusive (every failure explained by
    a host stall, see `verify.host`), the failures as measured, and the stall behind each."""
    disturbed = {
        f"{d['from']}->{d['to']}": [Disturbance.from_dict(x) for x in d["disturbed"]]
        for d in figures["directions"]
    }
    if not disturbed:  # no tone directions (an agent under test): stalls without their drains
        disturbed = {"": host_disturbances(figures["host"], [])}
    return host_verdict(failures_of(figures, thresholds, extra), disturbed)


def unexpected_files(run_dir: Path, manifest: dict[str, Any]) -> list[str]:
    """Files of the run folder that are neither evidence nor written by verify."""
    known = set(ev.evidence_names(manifest))
    return sorted(
        p.name for p in run_dir.iterdir() if p.name not in known and not ev.is_derived(p.name)
    )


def build_report(run_dir: Path, key_id: str) -> tuple[dict[str, Any], Any]:
    """The report of `run_dir` (not yet written) and the analysis it came from."""
    analysis = analyse_run(run_dir)
    figures = analysis.figures
    manifest = ev.read_manifest(run_dir)
    thresholds = Thresholds.from_dict(figures["thresholds"])
    extra = [
        f"unexpected file {name} in the run folder" for name in unexpected_files(run_dir, manifest)
    ]
    verdict_ = verdict(figures, thresholds, extra)
    hashes = {
        name: ev.sha256_file(run_dir / name)
        for name in ev.evidence_names(manifest)
        if name not in figures["missing"]
    }
    report = {
        "schema": SCHEMA,
        "generator": GENERATOR,
        **figures,
        "verdict": verdict_,
        "evidence": hashes,
        "key_id": key_id,
    }
    return report, analysis


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_report(
    run_dir: str | Path, *, key_path: str | Path | None = None, html: bool = True
) -> ReportResult:
    """Analyse `run_dir`, write `report.json`, its DSSE envelope, the signer's key and the HTML.

    The key is `key_path`, else `$ECHOPROOF_SIGNING_KEY`, else
    `~/.config/echoproof/signing-key.pem`, created (mode 0600) on first use.
    Raises :class:`VerifyError` on bad evidence or a bad key.
    """
    run_dir = Path(run_dir)
    key = signing.load_or_create_key(Path(key_path) if key_path is not None else None)
    public = key.public_key()
    report, analysis = build_report(run_dir, signing.key_id(public))
    payload = canonical_json(report)
    envelope = signing.sign_envelope(payload, key)
    _write_atomic(run_dir / ev.REPORT, payload)
    _write_atomic(run_dir / ev.ENVELOPE, signing.envelope_bytes(envelope))
    _write_atomic(run_dir / ev.SIGNER_KEY, signing.public_pem(public))
    if html:
        from verify.html import write_html  # matplotlib is slow to import: only when drawing

        write_html(run_dir, report, analysis)
    verdict_ = report["verdict"]
    return ReportResult(
        passed=verdict_["passed"],
        status=verdict_["status"],
        failures=list(verdict_["failures"]),
        reason=verdict_["reason"],
        report=report,
        path=run_dir / ev.REPORT,
    )
