"""Re-checking run folders from their files alone: signature, hashes, every figure, the verdict."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import jsonschema
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from verify import attestation, signing, trust
from verify import evidence as ev
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
    `signer` is the full id of the key that signed (None: not known), `trusted_by` what made it
    trusted (`--key` or the trusted-keys folder; None: untrusted), `envelope` the format read
    (verify.attestation: `in-toto` or `legacy`; None: none verified).
    """

    run: str
    ok: bool
    reason: str
    reasons: list[str] = dataclasses.field(default_factory=list)
    status: str = "ok"
    signer: str | None = None
    trusted: bool = False
    trusted_by: str | None = None
    envelope: str | None = None
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


def check(
    path: str | Path,
    *,
    key: str | Path | bytes | Ed25519PublicKey | None = None,
    trusted: str | Path | None = None,
    require_trusted: bool = False,
    full: bool = False,
    on_run: Callable[[int, int, Path], AbstractContextManager[None]] | None = None,
) -> list[CheckResult]:
    """Re-check every run under `path`. `key` pins the signer (else each run's `signer.pub.pem`
    is used, and trusted when it is in the folder `trusted`, default verify.trust.default_dir());
    with `require_trusted` an untrusted signer FAILs the run; `full` scores every probe segment
    again, not a sample of a long run's (`quality.Recheck`). `on_run(i, n, run)` is told as the
    i-th of n runs begins; the re-check runs inside the context it returns (progress).

    Raises :class:`VerifyError` only when there is nothing to check or a pinned or trusted key is
    unusable; every problem with a run is a failed :class:`CheckResult`.
    """
    policy = trust.Policy.load(key, trusted, require_trusted)
    runs = find_runs(path)
    results = []
    for i, run in enumerate(runs, start=1):
        with contextlib.nullcontext() if on_run is None else on_run(i, len(runs), run):
            results.append(check_run(run, policy, full=full))
    return results


def check_run(
    run_dir: Path, policy: trust.Policy | None = None, *, full: bool = False
) -> CheckResult:
    """Re-check one run folder (by default against the default trusted-keys folder; `full`: see
    :func:`check`)."""
    policy = policy or trust.Policy.load()
    reasons: list[str] = []
    inconclusive: list[str] = []
    rechecked: dict[str, dict[str, Any]] = {}
    signer, signed = trust.Signer(None), None
    try:
        if not (run_dir / ev.REPORT).is_file():
            reasons.append(f"{ev.REPORT} is missing (the run was never verified)")
        else:
            signer, signed = _check_signature(run_dir, policy, reasons)
            sample = None if full else rechecked
            _check(run_dir, signer, signed, reasons, inconclusive, sample)
    except VerifyError as exc:
        reasons.append(str(exc))
    except OSError as exc:
        reasons.append(f"{Path(exc.filename or run_dir).name} cannot be read: {exc.strerror}")
    if policy.required and not signer.trusted:
        reasons.append(trust.untrusted_reason(signer, policy.folder))
    unique = list(dict.fromkeys(reasons))
    if not unique and inconclusive:
        status, reason, listed = "inconclusive", inconclusive[0], inconclusive[1:]
    else:
        status, reason, listed = ("fail" if unique else "ok"), "; ".join(unique), unique
    return CheckResult(
        run=str(run_dir),
        ok=status == "ok",
        reason=reason,
        reasons=listed,
        status=status,
        signer=signer.key_id,
        trusted=signer.trusted,
        trusted_by=signer.trusted_by,
        envelope=None if signed is None else signed.format,
        quality_rechecked=rechecked,
    )


def _check(
    run_dir: Path,
    signer: trust.Signer,
    signed: attestation.Signed | None,
    reasons: list[str],
    inconclusive: list[str],
    rechecked: dict[str, dict[str, Any]] | None,
) -> None:
    """Fill `reasons` with every problem; for a run that stands but whose verdict is
    inconclusive, `inconclusive` gets its reason, then each failure with its stall. With
    `rechecked` (not None), a long run's probe is scored again on a sample, which it receives."""
    payload = (run_dir / ev.REPORT).read_bytes()
    if signed is not None and signed.report != payload:
        reasons.append(f"{ev.REPORT} differs from the report signed in {ev.ENVELOPE}")
    report = _parse_report(payload, reasons)
    if report is None:
        return
    if signed is not None and signed.subjects is not None:
        reasons += attestation.subject_differences(signed.subjects, report["evidence"])
    if signed is not None and report["key_id"] != signer.key_id:
        reasons.append(
            f"{ev.REPORT} names key {signing.short_id(str(report['key_id']))}..., signed by "
            f"{signing.short_id(str(signer.key_id))}..."
        )
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
    run_dir: Path, policy: trust.Policy, reasons: list[str]
) -> tuple[trust.Signer, attestation.Signed | None]:
    """Who signed the envelope and what it says, when its signature verifies (else the reason
    is given, and the signer is the key the envelope claims, untrusted)."""
    try:
        envelope = ev.read_json(run_dir / ev.ENVELOPE)
        claimed = signing.key_ids(envelope)
    except VerifyError as exc:
        reasons.append(str(exc))
        return trust.Signer(None), None
    key = _signer_key(run_dir, policy, claimed, reasons)
    if key is None:
        return trust.Signer(claimed[0]), None
    try:
        payload_type, payload = signing.open_envelope(envelope, key, attestation.FORMATS)
        signed = attestation.read(payload_type, payload)
    except VerifyError as exc:
        reasons.append(str(exc))
        return trust.Signer(claimed[0]), None
    return policy.signer(signing.key_id(key)), signed


def _signer_key(
    run_dir: Path, policy: trust.Policy, claimed: list[str], reasons: list[str]
) -> Ed25519PublicKey | None:
    """The key to check the signature with: the pinned one, else `signer.pub.pem`, else a
    trusted key the envelope names; None (the reason given) when there is none."""
    path = run_dir / ev.SIGNER_KEY
    beside = None
    if path.is_file():
        try:
            beside = signing.load_public_key(path.read_bytes(), ev.SIGNER_KEY)
        except VerifyError as exc:
            reasons.append(str(exc))
    if policy.pinned is not None:
        if beside is not None:
            found, wanted = signing.key_id(beside), signing.key_id(policy.pinned)
            if found != wanted:
                reasons.append(
                    f"{ev.SIGNER_KEY} is key {signing.short_id(found)}..., expected the pinned "
                    f"key {signing.short_id(wanted)}..."
                )
        return policy.pinned
    if beside is not None:
        return beside
    for kid in claimed:
        if kid in policy.keys:
            return policy.keys[kid]
    if not path.is_file():
        reasons.append(
            f"{ev.SIGNER_KEY} is missing and no pinned or trusted key signed it: "
            "cannot check the signature"
        )
    return None


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
    # The schema ships with verify and a test checks it against its metaschema
    # (tests/verify/test_figures.py): checking it again here cost every re-check about 1-2 s.
    return jsonschema.validators.validator_for(schema)(schema)


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
