"""The signed statement: an in-toto Statement v1 that tools other than ours check, and the old
envelope (the report itself), still read."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf import json_format
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import SSlibKey

import verify
from tests.conftest import scaled
from verify import attestation, signing

README = Path(__file__).resolve().parents[2] / "README.md"


def _envelope(run: Path) -> dict[str, Any]:
    envelope: dict[str, Any] = json.loads((run / "report.dsse.json").read_bytes())
    return envelope


def _statement(run: Path) -> dict[str, Any]:
    statement: dict[str, Any] = json.loads(base64.b64decode(_envelope(run)["payload"]))
    return statement


def test_envelope_carries_an_in_toto_statement(signed_run: Path) -> None:
    """The payload is an in-toto Statement v1 of our predicate type: every evidence file a
    subject with its SHA-256, the report (as report.json holds it) the predicate."""
    envelope = _envelope(signed_run)
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    statement = _statement(signed_run)
    report = json.loads((signed_run / "report.json").read_bytes())
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://echoproof.invalid/report/v1"
    assert statement["predicate"] == report
    subjects = {s["name"]: s["digest"] for s in statement["subject"]}
    assert subjects == {name: {"sha256": sha} for name, sha in report["evidence"].items()}
    assert {"manifest.json", "support-from-customer.wav", "customer.sent.csv"} <= set(subjects)
    [checked] = verify.check(signed_run)
    assert checked.ok and checked.envelope == "in-toto", checked.reason


def independent_check(run: Path, public_pem: bytes) -> dict[str, str]:
    """Check a run's envelope with securesystemslib's DSSE and in-toto's own Statement, none of
    our code: the signature by the key in `public_pem`, the statement's shape, and each
    subject's digest against the file; returns the subjects."""
    key = serialization.load_pem_public_key(public_pem)
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    verifier = SSlibKey.from_crypto(key, keyid=hashlib.sha256(raw).hexdigest())
    envelope = Envelope.from_dict(json.loads((run / "report.dsse.json").read_bytes()))
    envelope.verify([verifier], 1)
    assert envelope.payload_type == "application/vnd.in-toto+json"
    statement = Statement.copy_from_pb(
        json_format.Parse(envelope.payload, statement_pb2.Statement())
    )
    statement.validate()
    assert statement.pb.predicate_type == "https://echoproof.invalid/report/v1"
    subjects = {s.name: s.digest["sha256"] for s in statement.pb.subject}
    for name, digest in subjects.items():
        assert hashlib.sha256((run / name).read_bytes()).hexdigest() == digest, name
    return subjects


@pytest.fixture
def signed_real_copy(real_run: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of the session's real run, signed by a fresh key; and that key."""
    run = Path(shutil.copytree(real_run, tmp_path / real_run.name))
    key = tmp_path / "signer.pem"
    verify.write_report(run, key_path=key, html=False)
    return run, key


def test_standard_tools_check_a_real_run(signed_real_copy: tuple[Path, Path]) -> None:
    """securesystemslib verifies a real run's envelope, in-toto-attestation validates its
    statement, and every subject's digest matches its file: each WAV, CSV, the manifest, the
    host figures and the probe."""
    run, key = signed_real_copy
    subjects = independent_check(run, signing.public_path(key).read_bytes())
    report = json.loads((run / "report.json").read_bytes())
    assert subjects == report["evidence"]
    names = set(subjects)
    assert {"manifest.json", "host.csv", "probe.wav", "events.jsonl", "rtc-stats.json"} <= names
    assert {"support-from-customer.wav", "customer-from-support.wav"} <= names
    assert {"customer.sent.csv", "support-from-customer.arrivals.csv"} <= names


def test_standard_tools_reject_a_changed_file_or_another_key(
    signed_real_copy: tuple[Path, Path],
) -> None:
    """The same independent check refuses a signature against another key, and a WAV changed
    after signing."""
    run, _ = signed_real_copy
    stranger = signing.public_pem(Ed25519PrivateKey.generate().public_key())
    with pytest.raises(VerificationError):
        independent_check(run, stranger)
    wav = run / "customer-from-support.wav"
    data = bytearray(wav.read_bytes())
    data[len(data) // 2] ^= 0x01
    wav.write_bytes(bytes(data))
    with pytest.raises(AssertionError, match=r"customer-from-support\.wav"):
        independent_check(run, signing.public_path(signed_real_copy[1]).read_bytes())


def _readme_snippet() -> str:
    """The README's Python check of a run "without echoproof", as printed there."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    [snippet] = [b for b in blocks if "securesystemslib" in b]
    return snippet


def test_readme_snippet_checks_a_real_run(signed_real_copy: tuple[Path, Path]) -> None:
    """The README's snippet, run as printed, says OK for a real run and its signer's key, and
    fails (exit 1) for another key."""
    run, key = signed_real_copy

    def snippet(pub: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", _readme_snippet(), str(run), str(pub)],
            capture_output=True,
            text=True,
            timeout=scaled(60),
            check=False,
        )

    done = snippet(signing.public_path(key))
    assert done.returncode == 0, done.stderr
    report = json.loads((run / "report.json").read_bytes())
    count, verdict = len(report["evidence"]), report["verdict"]["status"]
    assert done.stdout == f"OK: {count} files as signed; verdict {verdict}\n"
    stranger = run.parent / "stranger.pub.pem"
    stranger.write_bytes(signing.public_pem(Ed25519PrivateKey.generate().public_key()))
    refused = snippet(stranger)
    assert refused.returncode == 1 and "VerificationError" in refused.stderr


def _sign_old_format(run: Path, key: Path) -> None:
    """Re-sign the run as echoproof did before the in-toto statement: the envelope's payload is
    report.json's exact bytes, of the old payload type (the old code path: DSSE over them)."""
    envelope = signing.sign_envelope(
        (run / "report.json").read_bytes(),
        signing.load_or_create_key(key),
        attestation.LEGACY_PAYLOAD_TYPE,
    )
    (run / "report.dsse.json").write_bytes(signing.envelope_bytes(envelope))


def test_old_format_still_verifies_and_says_so(signed_run: Path, session_key: Path) -> None:
    """An envelope of the old format re-checks OK, is said to be `legacy`, and still FAILs a
    changed report or a changed file."""
    _sign_old_format(signed_run, session_key)
    assert _envelope(signed_run)["payloadType"] == "application/vnd.echoproof.report+json"
    [checked] = verify.check(signed_run, key=signing.public_path(session_key))
    assert checked.ok, checked.reason
    assert (checked.envelope, checked.trusted_by) == ("legacy", "--key")
    wav = signed_run / "support-from-customer.wav"
    wav.write_bytes(wav.read_bytes()[:-2] + b"\x01\x02")
    [changed] = verify.check(signed_run)
    assert not changed.ok and "support-from-customer.wav has changed" in changed.reason
    assert changed.envelope == "legacy"


def test_old_format_report_changed_fails(signed_run: Path, session_key: Path) -> None:
    """In the old format report.json must be the signed payload byte for byte."""
    _sign_old_format(signed_run, session_key)
    report = json.loads((signed_run / "report.json").read_bytes())
    report["run_id"] = "20261123T221800Z-00000000"
    (signed_run / "report.json").write_bytes(verify.canonical_json(report))
    [checked] = verify.check(signed_run)
    assert "report.json differs from the report signed in report.dsse.json" in checked.reason


def _resign_statement(run: Path, key: Path, change: dict[str, object]) -> None:
    """Sign a statement changed by `change` with the run's real key."""
    statement = {**_statement(run), **change}
    envelope = signing.sign_envelope(
        verify.canonical_json(statement),
        signing.load_or_create_key(key),
        attestation.PAYLOAD_TYPE,
    )
    (run / "report.dsse.json").write_bytes(signing.envelope_bytes(envelope))


def test_subjects_must_match_the_report(signed_run: Path, session_key: Path) -> None:
    """A statement whose subjects differ from the report's evidence FAILs, even signed by the
    real key: a tool that reads only the subjects must see what the report lists."""
    subjects = _statement(signed_run)["subject"]
    changed = [*subjects[:-1], {**subjects[-1], "digest": {"sha256": "0" * 64}}]
    _resign_statement(signed_run, session_key, {"subject": changed})
    [checked] = verify.check(signed_run)
    assert not checked.ok
    name = subjects[-1]["name"]
    assert f"subjects differ from the evidence report.json lists (first at {name})" in (
        checked.reason
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"predicateType": "https://slsa.dev/provenance/v1"}, "statement's predicateType is"),
        ({"_type": "https://in-toto.io/Statement/v0.1"}, "statement's _type is"),
        ({"subject": []}, "statement has no subject"),
        ({"subject": [{"name": "x.wav", "digest": {"md5": "00"}}]}, "subject[0] is not a file"),
        ({"predicate": "report"}, "predicate is not the report"),
    ],
)
def test_a_statement_not_ours_fails(
    signed_run: Path, session_key: Path, change: dict[str, object], reason: str
) -> None:
    """A validly signed statement of another type or shape FAILs with one sentence."""
    _resign_statement(signed_run, session_key, change)
    [checked] = verify.check(signed_run)
    assert not checked.ok and reason in checked.reason, checked.reason
