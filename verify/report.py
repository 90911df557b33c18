"""The signed report: verdict, canonical JSON, JSON Schema, and writing a run folder's report."""

from __future__ import annotations

import dataclasses
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from verify import attestation, signing
from verify import evidence as ev
from verify.canonical import canonical_json as canonical_json
from verify.figures import analyse_run
from verify.host import Disturbance
from verify.host import disturbances as host_disturbances
from verify.host import verdict as host_verdict
from verify.rules import direction_label, failures_of, unexpected_file
from verify.thresholds import Thresholds

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
    key_id: str  # the signer's


def report_schema() -> dict[str, Any]:
    """The published JSON Schema of `report.json` (`verify/report.schema.json`)."""
    text = resources.files("verify").joinpath("report.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def verdict(figures: dict[str, Any], thresholds: Thresholds, extra: list[str]) -> dict[str, Any]:
    """The report's verdict: `status` passed, failed or inconclusive (every failure explained by
    a host stall, see `verify.host`), the failures as measured, and the stall behind each."""
    disturbed = {
        direction_label(d): [Disturbance.from_dict(x) for x in d["disturbed"]]
        for d in figures["directions"]
    }
    if not disturbed:  # no tone directions (an agent under test): stalls without their drains
        disturbed = {"": host_disturbances(figures["host"], [])}
    return host_verdict(failures_of(figures, thresholds, extra), disturbed)


def unexpected_files(run_dir: Path, manifest: ev.Manifest) -> list[str]:
    """Files of the run folder that are neither evidence nor written by verify."""
    known = set(ev.evidence_names(manifest))
    return sorted(
        p.name for p in run_dir.iterdir() if p.name not in known and not ev.is_derived(p.name)
    )


def run_verdict(run_dir: Path, manifest: ev.Manifest, figures: dict[str, Any]) -> dict[str, Any]:
    """The verdict on a run folder's figures: against their own thresholds, with every
    unexpected file of the folder a failure."""
    extra = [unexpected_file(name) for name in unexpected_files(run_dir, manifest)]
    return verdict(figures, Thresholds.from_dict(figures["thresholds"]), extra)


def build_report(run_dir: Path, key_id: str) -> tuple[dict[str, Any], Any]:
    """The report of `run_dir` (not yet written) and the analysis it came from."""
    analysis = analyse_run(run_dir)
    figures = analysis.figures
    manifest = ev.read_manifest(run_dir)
    verdict_ = run_verdict(run_dir, manifest, figures)
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
    payload, envelope = signed_files(report, key)
    _write_atomic(run_dir / ev.REPORT, payload)
    _write_atomic(run_dir / ev.ENVELOPE, envelope)
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
        key_id=signing.key_id(public),
    )


def signed_files(report: dict[str, Any], key: Ed25519PrivateKey) -> tuple[bytes, bytes]:
    """The bytes of `report.json` and of its envelope, `key`'s DSSE signature over the in-toto
    Statement of the report (verify.attestation)."""
    envelope = signing.sign_envelope(attestation.payload(report), key, attestation.PAYLOAD_TYPE)
    return canonical_json(report), signing.envelope_bytes(envelope)
