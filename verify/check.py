"""Re-checking run folders from their files alone: signature, hashes, every figure, the verdict."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jsonschema
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from verify import evidence as ev
from verify import signing
from verify.errors import VerifyError
from verify.figures import analyse_run
from verify.quality import MOS_FIELDS, MOS_TOLERANCE, Recheck
from verify.report import canonical_json, report_schema, run_verdict
from verify.rules import missing_file, unexpected_file

MAX_FIGURE_DIFFERENCES = 3
# figures are rounded; a re-check on another CPU may differ in the last digit
FIGURE_TOLERANCE = 2e-3


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """The outcome for one run folder: `status` ok, fail or inconclusive, and `reason`.

    fail: `reason` lists every problem, `; `-separated. inconclusive: the evidence is intact and
    every failed threshold coincides with a host stall; `reason` names the stall in one line.
    """

    run: str
    ok: bool
    reason: str
    reasons: list[str] = dataclasses.field(default_factory=list)
    status: str = "ok"
    # per direction whose probe was re-checked on a sample (`quality.Recheck`): the segments
    # scored again, and how many the direction has
    quality_rechecked: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)


def find_runs(path: str | Path) -> list[Path]:
    """`path` itself when it is a run folder, else its sub-folders that are; raises if none."""
    path = Path(path)
    if not path.exists():
        raise VerifyError(f"{path} does not exist, expected a run folder or a folder of runs")
    if not path.is_dir():
        raise VerifyError(f"{path} is a file, expected a run folder or a folder of runs")
    if _is_run(path):
        return [path]
    runs = sorted(p for p in path.iterdir() if p.is_dir() and _is_run(p))
    if not runs:
        raise VerifyError(f"nothing to verify in {path}: no folder with a {ev.MANIFEST} or report")
    return runs


def _is_run(path: Path) -> bool:
    return (path / ev.MANIFEST).exists() or (path / ev.REPORT).exists()


def load_trusted_key(key: str | Path | bytes | Ed25519PublicKey) -> Ed25519PublicKey:
    """A public key given as an object, PEM bytes or a PEM file path."""
    if isinstance(key, Ed25519PublicKey):
        return key
    if isinstance(key, bytes):
        return signing.load_public_key(key, "the pinned key")
    path = Path(key)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise VerifyError(f"pinned key {path} cannot be read: {exc.strerror}") from None
    return signing.load_public_key(data, f"pinned key {path}")


def check(
    path: str | Path,
    *,
    key: str | Path | bytes | Ed25519PublicKey | None = None,
    full: bool = False,
) -> list[CheckResult]:
    """Re-check every run under `path`; `key` pins the trusted signer (else `signer.pub.pem`);
    `full` scores every probe segment again, not a sample of a long run's (`quality.Recheck`).

    Raises :class:`VerifyError` only when there is nothing to check or the pinned key is unusable;
    every problem with a run is a failed :class:`CheckResult`.
    """
    trusted = None if key is None else load_trusted_key(key)
    return [check_run(run, trusted, full=full) for run in find_runs(path)]


def check_run(
    run_dir: Path, trusted: Ed25519PublicKey | None = None, *, full: bool = False
) -> CheckResult:
    """Re-check one run folder (`full`: see :func:`check`)."""
    reasons: list[str] = []
    inconclusive: list[str] = []
    rechecked: dict[str, dict[str, Any]] = {}
    try:
        _check(run_dir, trusted, reasons, inconclusive, None if full else rechecked)
    except VerifyError as exc:
        reasons.append(str(exc))
    except OSError as exc:
        reasons.append(f"{Path(exc.filename or run_dir).name} cannot be read: {exc.strerror}")
    unique = list(dict.fromkeys(reasons))
    if not unique and inconclusive:
        return CheckResult(
            run=str(run_dir),
            ok=False,
            reason=inconclusive[0],
            reasons=inconclusive[1:],
            status="inconclusive",
            quality_rechecked=rechecked,
        )
    return CheckResult(
        run=str(run_dir),
        ok=not unique,
        reason="; ".join(unique),
        reasons=unique,
        status="fail" if unique else "ok",
        quality_rechecked=rechecked,
    )


def _check(
    run_dir: Path,
    trusted: Ed25519PublicKey | None,
    reasons: list[str],
    inconclusive: list[str],
    rechecked: dict[str, dict[str, Any]] | None,
) -> None:
    """Fill `reasons` with every problem; for a run that stands but whose verdict is
    inconclusive, `inconclusive` gets its reason, then each failure with its stall. With
    `rechecked` (not None), a long run's probe is scored again on a sample, which it receives."""
    report_path = run_dir / ev.REPORT
    if not report_path.is_file():
        reasons.append(f"{ev.REPORT} is missing (the run was never verified)")
        return
    payload = report_path.read_bytes()
    _check_signature(run_dir, payload, trusted, reasons)
    report = _parse_report(payload, reasons)
    if report is None:
        return
    recheck = None if rechecked is None else _recheck(payload, report)
    fresh = _reanalyse(run_dir, report["evidence"], reasons, recheck, rechecked)
    if fresh is None:
        return
    figures, files_intact = fresh
    fresh_verdict = run_verdict(run_dir, ev.read_manifest(run_dir), figures)
    if files_intact:  # else the changed file is the reason; its knock-on differences are noise
        reasons += _differences(report, figures)[:MAX_FIGURE_DIFFERENCES]
        reasons += _verdict_differences(report["verdict"], fresh_verdict)
    reasons += _contradictions(report["verdict"])
    _judge(fresh_verdict, reasons, inconclusive)


def _parse_report(payload: bytes, reasons: list[str]) -> dict[str, Any] | None:
    """The report, when it is JSON of the published schema (else None, the reason given); a
    report not in canonical form is a reason too."""
    try:
        report = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        reasons.append(f"{ev.REPORT} is not valid JSON ({exc})")
        return None
    shape = shape_errors(report)
    if shape:
        reasons.append(f"{ev.REPORT} does not match its schema: {shape[0]}")
        return None
    if canonical_json(report) != payload:
        reasons.append(f"{ev.REPORT} is not canonical JSON (sorted keys, no whitespace)")
    parsed: dict[str, Any] = report
    return parsed


def _recheck(payload: bytes, report: dict[str, Any]) -> Recheck:
    """The sample of the probe's segments to score again: drawn with a seed from the signed
    report's digest, among each direction's signed segments."""
    signed = {
        f"{d['from']}->{d['to']}": d["quality"]["segments"]
        for d in report["directions"]
        if d.get("quality")
    }
    return Recheck(int.from_bytes(hashlib.sha256(payload).digest()[:8], "big"), signed)


def _reanalyse(
    run_dir: Path,
    listed: dict[str, str],
    reasons: list[str],
    recheck: Recheck | None = None,
    rechecked: dict[str, dict[str, Any]] | None = None,
) -> tuple[dict[str, Any], bool] | None:
    """The figures recomputed from the evidence, and whether every file is as signed; None when
    the evidence cannot be analysed (the reason given, after the hash mismatches). With
    `recheck`, `rechecked` receives the probe segments scored again where that was a sample."""
    file_reasons: list[str] = []
    # hashing (hashlib releases the GIL) overlaps the analysis
    with ThreadPoolExecutor(max_workers=1) as pool:
        hashing = pool.submit(_check_files, run_dir, listed, file_reasons)
        try:
            analysis = analyse_run(run_dir, recheck=recheck)
            figures, error = analysis.figures, None
            if rechecked is not None and recheck is not None:
                rechecked.update(
                    (label, {"scored": scored, "of": len(recheck.signed[label])})
                    for label, scored in analysis.rechecked.items()
                )
        except VerifyError as exc:  # names the bad file
            error = str(exc)
        hashing.result()
    reasons += file_reasons
    if error is not None:
        reasons.append(error)
        return None
    return figures, not file_reasons


def _verdict_differences(stored: dict[str, Any], fresh: dict[str, Any]) -> list[str]:
    """How the signed verdict differs from the one the evidence gives."""
    if fresh["failures"] != stored["failures"]:
        return [
            f"{ev.REPORT} verdict lists {len(stored['failures'])} failures, "
            f"the evidence gives {len(fresh['failures'])}"
        ]
    if fresh != stored:
        return [
            f"{ev.REPORT} verdict is {stored['status']}, the evidence gives "
            f"{fresh['status']} ({fresh['reason'] or 'no host stall'})"
        ]
    return []


def _contradictions(stored: dict[str, Any]) -> list[str]:
    """A signed verdict whose passed, status and failures disagree."""
    passed = stored["status"] == "passed"
    if bool(stored["passed"]) != passed or passed != (not stored["failures"]):
        return [
            f"{ev.REPORT} verdict passed={stored['passed']} status={stored['status']} "
            "contradicts its list of failures"
        ]
    return []


def _judge(fresh: dict[str, Any], reasons: list[str], inconclusive: list[str]) -> None:
    """The evidence's own verdict: an inconclusive one fills `inconclusive` (its reason, then
    each failure with its stall); each failure of a failed one is a reason, once."""
    failures = fresh["failures"]
    if fresh["status"] == "inconclusive":
        inconclusive.append(fresh["reason"])
        inconclusive += [
            f"{line} (host: {stall})"
            for line, stall in zip(failures, fresh["host_stalls"], strict=True)
        ]
        return
    for line in failures:
        if line not in reasons:
            reasons.append(line if line.startswith("run status") else f"verdict failed: {line}")


def _check_signature(
    run_dir: Path, payload: bytes, trusted: Ed25519PublicKey | None, reasons: list[str]
) -> None:
    signer_path = run_dir / ev.SIGNER_KEY
    signer = None
    if signer_path.is_file():
        try:
            signer = signing.load_public_key(signer_path.read_bytes(), ev.SIGNER_KEY)
        except VerifyError as exc:
            reasons.append(str(exc))
    elif trusted is None:
        reasons.append(
            f"{ev.SIGNER_KEY} is missing and no key is pinned: cannot check the signature"
        )
    if trusted is not None and signer is not None:
        found, wanted = signing.key_id(signer), signing.key_id(trusted)
        if found != wanted:
            reasons.append(
                f"{ev.SIGNER_KEY} is key {found[:16]}..., expected the pinned key {wanted[:16]}..."
            )
    key = trusted or signer
    if key is None:
        return
    try:
        envelope = ev.read_json(run_dir / ev.ENVELOPE)
        signed = signing.open_envelope(envelope, key)
    except VerifyError as exc:
        reasons.append(str(exc))
        return
    if signed != payload:
        reasons.append(f"{ev.REPORT} differs from the payload signed in {ev.ENVELOPE}")
    try:
        claimed = json.loads(payload).get("key_id")
    except (ValueError, AttributeError):
        return  # reported when the report is parsed
    if claimed != signing.key_id(key):
        reasons.append(
            f"{ev.REPORT} names key {str(claimed)[:16]}..., signed by {signing.key_id(key)[:16]}..."
        )


def _check_files(run_dir: Path, listed: dict[str, str], reasons: list[str]) -> None:
    present = sorted(p.name for p in run_dir.iterdir() if not ev.is_derived(p.name))
    for name in present:
        if name not in listed:
            reasons.append(unexpected_file(name))
    for name, digest in sorted(listed.items()):
        path = run_dir / name
        if not path.is_file():
            reasons.append(missing_file(name))
            continue
        found = ev.sha256_file(path)
        if found != digest:
            reasons.append(
                f"{name} has changed since it was signed "
                f"(sha256 {found[:12]}..., the report says {str(digest)[:12]}...)"
            )


def _differences(report: dict[str, Any], fresh: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for key, value in fresh.items():
        _diff(report.get(key), value, key, out)
    return out


def _diff(stored: Any, fresh: Any, where: str, out: list[str]) -> None:
    if isinstance(fresh, dict) and isinstance(stored, dict):
        for key in sorted(set(fresh) | set(stored)):
            _diff(stored.get(key), fresh.get(key), f"{where}.{key}", out)
        return
    if isinstance(fresh, list) and isinstance(stored, list) and len(fresh) == len(stored):
        for i, (a, b) in enumerate(zip(stored, fresh, strict=True)):
            _diff(a, b, f"{where}[{i}]", out)
        return
    if _same(stored, fresh, MOS_TOLERANCE if where.endswith(MOS_FIELDS) else FIGURE_TOLERANCE):
        return
    if isinstance(fresh, list) and isinstance(stored, list):
        shown_stored, shown_fresh = f"{len(stored)} entries", f"{len(fresh)} entries"
    else:
        shown_stored, shown_fresh = json.dumps(stored), json.dumps(fresh)
    out.append(
        f"figure {where} is {shown_stored} in {ev.REPORT}, "
        f"{shown_fresh} recomputed from the evidence"
    )


def _same(a: Any, b: Any, abs_tol: float) -> bool:
    numbers = (int, float)
    if (
        isinstance(a, bool)
        or isinstance(b, bool)
        or not (isinstance(a, numbers) and isinstance(b, numbers))
    ):
        return bool(a == b and type(a) is type(b))
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=abs_tol)


@functools.cache
def _validator() -> jsonschema.protocols.Validator:
    schema = report_schema()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def shape_errors(value: Any) -> list[str]:
    """Where `value` breaks the published report schema (`verify/report.schema.json`), every
    keyword of JSON Schema 2020-12 enforced; each error names the place and what was expected."""
    errors = sorted(_validator().iter_errors(value), key=lambda e: [str(p) for p in e.path])
    return [_worded(e) for e in errors]


def _worded(error: jsonschema.ValidationError) -> str:
    """One schema error as found-versus-expected, in the verifier's own words."""
    where, found = _where(error.absolute_path), json.dumps(error.instance)[:40]
    rule = error.validator_value
    match error.validator:
        case "required":
            missing = [k for k in rule if k not in error.instance]
            return f"{where} has no field {missing[0]!r}"
        case "additionalProperties":
            extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
            return f"{where} has an unexpected field {extra[0]!r}"
        case "type":
            kinds = rule if isinstance(rule, list) else [rule]
            return f"{where} is {found}, expected {' or '.join(kinds)}"
        case "minimum":
            return f"{where} is {found}, expected at least {rule}"
        case "enum":
            return f"{where} is {found}, expected one of {rule}"
        case "const":
            return f"{where} is {found}, expected {json.dumps(rule)}"
        case "pattern":
            return f"{where} is {found}, expected a string matching {rule}"
    return f"{where}: {error.message}"


def _where(path: Any) -> str:
    out = "report"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out
