"""Keys and DSSE envelopes: creation, file modes, signing and every way a signature can fail."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from verify import SignatureError, signing


def test_key_created_with_mode_0600_and_public_key_beside_it(tmp_path: Path) -> None:
    """A first use creates the private key 0600 and `signing-key.pub.pem` next to it."""
    path = tmp_path / "conf" / "signing-key.pem"
    key = signing.load_or_create_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    pub = tmp_path / "conf" / "signing-key.pub.pem"
    loaded = serialization.load_pem_public_key(pub.read_bytes())
    assert signing.key_id(loaded) == signing.key_id(key.public_key())  # type: ignore[arg-type]


def test_key_reused_on_second_use(tmp_path: Path) -> None:
    """The second use loads the same key rather than making a new one."""
    path = tmp_path / "k.pem"
    first = signing.load_or_create_key(path)
    second = signing.load_or_create_key(path)
    assert signing.key_id(first.public_key()) == signing.key_id(second.public_key())


def test_default_key_path_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an argument the key lives at $ECHOPROOF_SIGNING_KEY."""
    monkeypatch.setenv("ECHOPROOF_SIGNING_KEY", str(tmp_path / "env" / "key.pem"))
    signing.load_or_create_key()
    assert (tmp_path / "env" / "key.pem").is_file()
    assert (tmp_path / "env" / "key.pub.pem").is_file()


def test_default_key_path_under_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without argument or environment the key is ~/.config/echoproof/signing-key.pem."""
    monkeypatch.delenv("ECHOPROOF_SIGNING_KEY")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert signing.default_key_path() == tmp_path / ".config" / "echoproof" / "signing-key.pem"


def test_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    """A private key with group/other permissions is refused, naming the mode."""
    path = tmp_path / "k.pem"
    signing.load_or_create_key(path)
    os.chmod(path, 0o644)
    with pytest.raises(SignatureError, match="mode 0644, expected 0600"):
        signing.load_or_create_key(path)


def test_key_of_wrong_type_is_refused(tmp_path: Path) -> None:
    """A PEM file that is not a private key gives one clear sentence."""
    path = tmp_path / "k.pem"
    path.write_text("not a key\n")
    os.chmod(path, 0o600)
    with pytest.raises(SignatureError, match="not an unencrypted PEM key"):
        signing.load_or_create_key(path)


def test_key_id_is_sha256_of_raw_public_key() -> None:
    """The key id is the hex SHA-256 of the 32 raw public key bytes."""
    import hashlib

    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert signing.key_id(key.public_key()) == hashlib.sha256(raw).hexdigest()


def test_pae_matches_the_dsse_specification() -> None:
    """PAE is `DSSEv1 <len type> <type> <len body> <body>` (the spec's own example)."""
    assert signing.pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


KIND = "application/vnd.in-toto+json"


def test_envelope_round_trip() -> None:
    """A signed envelope opens with the signer's public key and yields its type and the exact
    payload; the key ids it claims are readable before it is verified."""
    key = Ed25519PrivateKey.generate()
    envelope = signing.sign_envelope(b'{"a":1}', key, KIND)
    assert envelope["payloadType"] == KIND
    opened = json.loads(signing.envelope_bytes(envelope))
    assert signing.open_envelope(opened, key.public_key(), (KIND,)) == (KIND, b'{"a":1}')
    assert signing.key_ids(opened) == [signing.key_id(key.public_key())]


def test_envelope_other_key_fails() -> None:
    """An envelope signed by another key names both key ids."""
    envelope = signing.sign_envelope(b"x", Ed25519PrivateKey.generate(), KIND)
    with pytest.raises(SignatureError, match="expected key"):
        signing.open_envelope(envelope, Ed25519PrivateKey.generate().public_key(), (KIND,))


def test_envelope_changed_payload_fails() -> None:
    """A payload changed after signing does not verify."""
    key = Ed25519PrivateKey.generate()
    envelope = signing.sign_envelope(b"payload", key, KIND)
    envelope["payload"] = base64.b64encode(b"pAyload").decode()
    with pytest.raises(SignatureError, match="does not verify"):
        signing.open_envelope(envelope, key.public_key(), (KIND,))


def test_envelope_bad_base64_and_type_fail() -> None:
    """Malformed base64 and a foreign payloadType each give a sentence naming the field."""
    key = Ed25519PrivateKey.generate()
    envelope = signing.sign_envelope(b"payload", key, KIND)
    with pytest.raises(SignatureError, match="sig is not valid base64"):
        signing.open_envelope(
            {**envelope, "signatures": [{**envelope["signatures"][0], "sig": "!!"}]},
            key.public_key(),
            (KIND,),
        )
    with pytest.raises(SignatureError, match="payloadType"):
        signing.open_envelope({**envelope, "payloadType": "text/plain"}, key.public_key(), (KIND,))
    with pytest.raises(SignatureError, match="payloadType"):
        signing.open_envelope({**envelope, "payloadType": ["x"]}, key.public_key(), (KIND,))
    with pytest.raises(SignatureError, match="no signature"):
        signing.open_envelope({**envelope, "signatures": []}, key.public_key(), (KIND,))
