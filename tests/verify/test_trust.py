"""Who signed a run and whether that key is trusted: a forged run re-signed with a key of its own
passes only as untrusted; `--require-trusted` and `--key` FAIL it; the trusted-keys folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

import verify
from verify import signing
from verify.__main__ import main


def _key_id(private: Path) -> str:
    pem = signing.public_path(private).read_bytes()
    return signing.key_id(signing.load_public_key(pem, "a test key"))


@pytest.fixture
def genuine_and_forged(real_run: Path, tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    """The session's real run signed by the team's key, which the trusted-keys folder holds;
    and a forgery of it: a WAV changed, then the report redone and re-signed with a new key
    (every hash and figure then matches the changed files). Returns both runs, the team's key
    and the folder."""
    genuine = Path(shutil.copytree(real_run, tmp_path / "genuine" / real_run.name))
    team_key, folder = tmp_path / "team.pem", tmp_path / "trusted"
    verify.write_report(genuine, key_path=team_key, html=False)
    assert main(["--trust", str(signing.public_path(team_key)), "--trusted", str(folder)]) == 0
    forged = Path(shutil.copytree(genuine, tmp_path / "forged" / real_run.name))
    wav = forged / "support-from-customer.wav"
    data = bytearray(wav.read_bytes())
    data[len(data) // 2] ^= 0x01  # one sample's lowest bit: the figures barely move
    wav.write_bytes(bytes(data))
    verify.write_report(forged, key_path=tmp_path / "forger.pem", html=False)
    return genuine, forged, team_key, folder


def test_forged_run_passes_only_as_untrusted(
    genuine_and_forged: tuple[Path, Path, Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without --require-trusted the forgery passes every check, but its console line, JSON
    and JUnit say its signer is untrusted; the genuine run's say trusted."""
    genuine, forged, team_key, folder = genuine_and_forged
    capsys.readouterr()
    forger = _key_id(tmp_path / "forger.pem")
    junit = tmp_path / "verify.xml"
    assert main([str(forged), "--trusted", str(folder), "--junit", str(junit)]) == 0
    assert capsys.readouterr().out == f"OK: {forged} (key {forger[:16]} untrusted, in-toto)\n"
    [case] = ET.parse(junit).getroot().iter("testcase")
    properties = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert properties == {
        "signer": forger,
        "trusted": "false",
        "trusted_by": "",
        "envelope": "in-toto",
    }
    assert case.findtext("system-out") == f"key {forger[:16]} untrusted, in-toto"
    assert main([str(forged), "--trusted", str(folder), "--json"]) == 0
    [entry] = json.loads(capsys.readouterr().out)
    assert (entry["ok"], entry["signer"], entry["trusted"]) == (True, forger, False)
    team = _key_id(team_key)
    assert main([str(genuine), "--trusted", str(folder), "--json"]) == 0
    [entry] = json.loads(capsys.readouterr().out)
    assert (entry["signer"], entry["trusted"], entry["trusted_by"]) == (team, True, str(folder))
    assert main([str(genuine), "--trusted", str(folder)]) == 0
    assert capsys.readouterr().out == f"OK: {genuine} (key {team[:16]} trusted, in-toto)\n"


def test_forged_run_fails_when_trust_is_required(
    genuine_and_forged: tuple[Path, Path, Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--require-trusted FAILs the forgery (exit 1) naming its key; the genuine run passes."""
    genuine, forged, _, folder = genuine_and_forged
    capsys.readouterr()
    forger = _key_id(tmp_path / "forger.pem")[:16]
    assert main([str(forged), "--trusted", str(folder), "--require-trusted"]) == 1
    assert capsys.readouterr().out == (
        f"FAIL: {forged} (key {forger} untrusted, in-toto): key {forger}... is not trusted: "
        f"pin it with --key or add it to {folder} (python -m verify --trust PUB)\n"
    )
    assert main([str(genuine), "--trusted", str(folder), "--require-trusted"]) == 0


def test_forged_run_fails_against_the_real_signers_key(
    genuine_and_forged: tuple[Path, Path, Path, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--key with the real signer's public key FAILs the forgery, naming both keys; the
    genuine run is OK and pinned."""
    genuine, forged, team_key, _ = genuine_and_forged
    capsys.readouterr()
    pub = str(signing.public_path(team_key))
    assert main([str(forged), "--key", pub]) == 1
    out = capsys.readouterr().out
    assert "expected the pinned key" in out and "untrusted" in out
    assert main([str(genuine), "--key", pub]) == 0
    assert f"(key {_key_id(team_key)[:16]} pinned, in-toto)" in capsys.readouterr().out


def test_trust_adds_a_key_to_the_default_folder(
    signed_run: Path, session_key: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--trust PUB copies the key into $ECHOPROOF_TRUSTED_KEYS as `<key id>.pub.pem`, alone or
    before checking; runs it signed are trusted from then on."""
    kid = _key_id(session_key)
    folder = tmp_path / "trusted"  # the conftest's $ECHOPROOF_TRUSTED_KEYS
    assert main([str(signed_run), "--require-trusted"]) == 1
    capsys.readouterr()
    pub = str(signing.public_path(session_key))
    assert main(["--trust", pub, str(signed_run), "--require-trusted"]) == 0
    assert capsys.readouterr().out == (
        f"trusted key {kid[:16]} (in {folder})\n"
        f"OK: {signed_run} (key {kid[:16]} trusted, in-toto)\n"
        f"page: {signed_run / 'report.html'}\n"
    )
    assert (folder / f"{kid}.pub.pem").read_bytes() == signing.public_path(session_key).read_bytes()
    assert main([str(signed_run), "--require-trusted"]) == 0


def test_trusted_key_stands_in_for_a_missing_signer_key(
    signed_run: Path, session_key: Path
) -> None:
    """A run whose signer.pub.pem is gone is checked with the trusted key its envelope names;
    with no such key it FAILs, saying so."""
    (signed_run / "signer.pub.pem").unlink()
    [checked] = verify.check(signed_run)
    assert not checked.ok
    assert "signer.pub.pem is missing and no pinned or trusted key signed it" in checked.reason
    main(["--trust", str(signing.public_path(session_key))])
    [checked] = verify.check(signed_run, require_trusted=True)
    assert checked.ok and checked.trusted, checked.reason


def test_unusable_keys_are_usage_errors(
    signed_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A --trust file or a trusted-keys file that is no public key, or neither a PATH nor
    --trust: exit 2 with one sentence, no traceback."""
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    assert main(["--trust", str(junk)]) == 2
    assert capsys.readouterr().err == f"error: public key {junk} is not a PEM public key\n"
    folder = tmp_path / "folder"
    folder.mkdir()
    shutil.copy(junk, folder / "junk.pem")
    assert main([str(signed_run), "--trusted", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: trusted key {folder / 'junk.pem'} is not a PEM public key\n"
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2


def test_html_report_says_who_signed(signed_run: Path, session_key: Path, tmp_path: Path) -> None:
    """report.html's verdict banner names the signer's full key id and whether the machine that
    wrote it trusts that key."""
    kid = _key_id(session_key)
    verify.write_report(signed_run, key_path=session_key)
    page = (signed_run / "report.html").read_text()
    key = f'<code class="key-id">{kid}</code>'
    banner = page[page.index('<header id="verdict"') : page.index("</header>")]
    assert (
        f'{key}, <span class="signature-trust">untrusted (not in {tmp_path / "trusted"})' in banner
    )
    main(["--trust", str(signing.public_path(session_key))])
    verify.write_report(signed_run, key_path=session_key)
    page = (signed_run / "report.html").read_text()
    banner = page[page.index('<header id="verdict"') : page.index("</header>")]
    assert f'{key}, <span class="signature-trust">trusted (in {tmp_path / "trusted"})' in banner


def test_any_pem_in_the_folder_named_by_trusted_wins_over_the_environment(
    signed_run: Path, session_key: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A key copied into a folder by hand, under any `*.pem` name, is trusted when --trusted
    names that folder; $ECHOPROOF_TRUSTED_KEYS (empty here) is then not read."""
    folder = tmp_path / "team-keys"
    folder.mkdir()
    shutil.copy(signing.public_path(session_key), folder / "ci-signer.pem")
    assert main([str(signed_run), "--require-trusted"]) == 1
    capsys.readouterr()
    assert main([str(signed_run), "--require-trusted", "--trusted", str(folder), "--json"]) == 0
    [entry] = json.loads(capsys.readouterr().out)
    assert (entry["trusted"], entry["trusted_by"]) == (True, str(folder))
