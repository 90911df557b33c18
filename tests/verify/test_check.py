"""Re-checking a signed run: untouched it is OK; each kind of tampering FAILs naming the file."""

from __future__ import annotations

import base64
import json
import wave
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import verify
from benchmarks import _synth as synth
from verify import signing
from verify.report import signed_files


def _one(path: Path, **kwargs: object) -> verify.CheckResult:
    results = verify.check(path, **kwargs)  # type: ignore[arg-type]
    assert len(results) == 1
    return results[0]


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_untouched_run_is_ok(signed_run: Path) -> None:
    """A freshly signed passing run checks OK with no reason."""
    result = _one(signed_run)
    assert result.ok, result.reason
    assert result.reason == ""


def test_pinned_key_ok(signed_run: Path, session_key: Path) -> None:
    """Pinning the signer's own public key checks OK."""
    assert _one(signed_run, key=signing.public_path(session_key)).ok


def test_folder_of_runs(signed_run: Path) -> None:
    """A folder holding run folders checks each of them."""
    results = verify.check(signed_run.parent)
    assert [Path(r.run).name for r in results] == [signed_run.name]


def _tamper_csv(name: str) -> Callable[[Path], None]:
    def tamper(run: Path) -> None:
        lines = (run / name).read_text().splitlines(keepends=True)
        head, _, rest = lines[3].rpartition(",")
        lines[3] = f"{head},{int(rest) + 1}\n"
        (run / name).write_text("".join(lines))

    return tamper


def _wav_byte(run: Path) -> None:
    path = run / "support-from-customer.wav"
    _flip_byte(path, path.stat().st_size // 2)


def _wav_truncated(run: Path) -> None:
    path = run / "customer-from-support.wav"
    path.write_bytes(path.read_bytes()[:-1000])


def _wav_44k(run: Path) -> None:
    path = run / "support-from-customer.wav"
    with wave.open(str(path)) as w:
        frames = w.readframes(w.getnframes())
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(44_100)
        w.writeframes(frames)


def _bursts_row(run: Path) -> None:
    path = run / "customer.bursts.csv"
    lines = path.read_text().splitlines(keepends=True)
    burst, freq, start, samples = lines[2].strip().split(",")
    lines[2] = f"{burst},{freq},{int(start) + 480},{samples}\n"
    path.write_text("".join(lines))


def _manifest(run: Path) -> None:
    path = run / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["config"]["thresholds"] = {"max_bursts_lost": 5}
    path.write_text(json.dumps(manifest))


def _corrupt_json(run: Path) -> None:
    path = run / "rtc-stats.json"
    path.write_text(path.read_text()[:-7])


def _report_figure(run: Path) -> None:
    path = run / "report.json"
    report = json.loads(path.read_bytes())
    report["directions"][0]["bursts_lost"] = 0
    report["directions"][0]["latency_ms"]["median"] = 1.0
    path.write_bytes(verify.canonical_json(report))


def _report_resigned(key: Path) -> Callable[[Path], None]:
    """Change a figure and re-sign with the real key: only recomputation can catch it."""

    def tamper(run: Path) -> None:
        report = json.loads((run / "report.json").read_bytes())
        report["directions"][0]["latency_ms"]["median"] = 1.0
        synth.resign(run, report, key)

    return tamper


def _envelope_payload(run: Path) -> None:
    path = run / "report.dsse.json"
    envelope = json.loads(path.read_bytes())
    payload = base64.b64decode(envelope["payload"]).replace(b'"passed":true', b'"passed":fals')
    envelope["payload"] = base64.b64encode(payload).decode()
    path.write_bytes(signing.envelope_bytes(envelope))


def _signature(run: Path) -> None:
    path = run / "report.dsse.json"
    envelope = json.loads(path.read_bytes())
    sig = bytearray(base64.b64decode(envelope["signatures"][0]["sig"]))
    sig[5] ^= 0x80
    envelope["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    path.write_bytes(signing.envelope_bytes(envelope))


def _resigned_by_stranger(run: Path) -> None:
    stranger = Ed25519PrivateKey.generate()
    _, envelope = signed_files(json.loads((run / "report.json").read_bytes()), stranger)
    (run / "report.dsse.json").write_bytes(envelope)
    (run / "signer.pub.pem").write_bytes(signing.public_pem(stranger.public_key()))


CASES = [
    ("wav byte", _wav_byte, "support-from-customer.wav has changed since it was signed"),
    ("truncated wav", _wav_truncated, "customer-from-support.wav is truncated"),
    ("wav at 44.1 kHz", _wav_44k, "support-from-customer.wav is sampled at 44100 Hz"),
    (
        "arrivals csv",
        _tamper_csv("support-from-customer.arrivals.csv"),
        "support-from-customer.arrivals.csv has changed since it was signed",
    ),
    ("sent csv", _tamper_csv("support.sent.csv"), "support.sent.csv has changed since it was"),
    ("bursts csv", _bursts_row, "customer.bursts.csv has changed since it was signed"),
    ("manifest", _manifest, "manifest.json has changed since it was signed"),
    ("corrupt json", _corrupt_json, "rtc-stats.json is not valid JSON"),
    ("report", _report_figure, "report.json differs from the report signed in report.dsse.json"),
    ("envelope payload", _envelope_payload, "report.dsse.json signature by key"),
    ("signature", _signature, "does not verify"),
    ("missing file", lambda run: (run / "events.jsonl").unlink(), "events.jsonl is missing"),
    (
        "extra file",
        lambda run: (run / "notes.txt").write_text("hi"),
        "unexpected file notes.txt in the run folder",
    ),
    ("missing envelope", lambda run: (run / "report.dsse.json").unlink(), "report.dsse.json is"),
    ("missing report", lambda run: (run / "report.json").unlink(), "report.json is missing"),
    ("corrupt envelope", lambda run: (run / "report.dsse.json").write_text("{"), "not valid JSON"),
]


@pytest.mark.parametrize(("tamper", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_tampering_fails_naming_the_file(
    signed_run: Path, tamper: Callable[[Path], None], reason: str
) -> None:
    """Each kind of tampering is a FAIL whose reason names the file and what differs."""
    tamper(signed_run)
    result = _one(signed_run)
    assert not result.ok
    assert reason in result.reason, result.reason


def test_recomputed_figures_catch_a_resigned_report(signed_run: Path, session_key: Path) -> None:
    """A figure changed and re-signed with the real key still FAILs: it is recomputed."""
    _report_resigned(session_key)(signed_run)
    result = _one(signed_run)
    assert not result.ok
    assert "figure directions[0].latency_ms.median is 1.0 in report.json" in result.reason


def test_other_pinned_key_fails(signed_run: Path, tmp_path: Path) -> None:
    """Pinning a key other than the signer's is a FAIL naming both keys."""
    other = tmp_path / "other.pem"
    signing.load_or_create_key(other)
    result = _one(signed_run, key=signing.public_path(other))
    assert not result.ok
    assert "signer.pub.pem is key" in result.reason
    assert "expected the pinned key" in result.reason


def test_stranger_signature_fails_against_pinned_key(signed_run: Path, session_key: Path) -> None:
    """A report re-signed by another key (with its key beside it) FAILs against the pinned key."""
    _resigned_by_stranger(signed_run)
    result = _one(signed_run, key=signing.public_path(session_key))
    assert not result.ok
    assert "expected key" in result.reason


def test_failed_verdict_is_a_fail(make_run: Callable[..., Path], tmp_path: Path) -> None:
    """A run whose verdict failed checks as FAIL with the verdict's reasons."""
    run = make_run(synth.Spec(customer=synth.Direction(lost=(2,))))
    verify.write_report(run, key_path=tmp_path / "k.pem", html=False)
    result = _one(run)
    assert not result.ok
    # a burst never heard is lost, not a gap
    assert result.reasons == [
        "verdict failed: customer->support: bursts lost 1 and late 0 (1 of 6) exceed the maximum 0",
    ]


def test_interrupted_run_is_a_fail(make_run: Callable[..., Path], tmp_path: Path) -> None:
    """A run with status interrupted checks as FAIL saying so."""
    run = make_run(synth.Spec(status="interrupted"))
    verify.write_report(run, key_path=tmp_path / "k.pem", html=False)
    result = _one(run)
    assert not result.ok
    assert "run status is interrupted" in result.reason


def test_unreadable_file_is_a_fail(signed_run: Path) -> None:
    """An evidence file that cannot be read (here: a folder in its place) FAILs naming it."""
    (signed_run / "customer.sent.csv").unlink()
    (signed_run / "customer.sent.csv").mkdir()
    result = _one(signed_run)
    assert not result.ok
    assert "customer.sent.csv" in result.reason
    assert "Traceback" not in result.reason


def test_nothing_to_verify(tmp_path: Path) -> None:
    """An empty folder or a missing path raises VerifyError (the CLI's usage error)."""
    with pytest.raises(verify.VerifyError, match="nothing to verify"):
        verify.check(tmp_path)
    with pytest.raises(verify.VerifyError, match="does not exist"):
        verify.check(tmp_path / "nowhere")


def test_report_breaking_schema_fails(signed_run: Path, session_key: Path) -> None:
    """A report missing a required figure (even re-signed by the real key) breaks its schema."""
    report = json.loads((signed_run / "report.json").read_bytes())
    del report["directions"][1]["bursts_lost"]
    synth.resign(signed_run, report, session_key)
    result = _one(signed_run)
    assert not result.ok
    assert result.reason == (
        "report.json does not match its schema: report.directions[1] has no field 'bursts_lost'"
    )
