"""Ed25519 keys and DSSE envelopes (https://github.com/secure-systems-lab/dsse, protocol v1).

The signer's private key lives in one PEM file created on first use with mode 0600 (its public key
beside it as `<name>.pub.pem`); a key id is the hex SHA-256 of the raw 32-byte public key. What the
payload is (its type) is the caller's: see verify.attestation.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import stat
from collections.abc import Collection
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from verify.errors import SignatureError
from verify.evidence import ENVELOPE

KEY_ENV = "ECHOPROOF_SIGNING_KEY"
PUBLIC_SUFFIX = ".pub.pem"  # a public key's file: `signing-key.pub.pem`, `<key id>.pub.pem`
# Shown in the console where a whole key id (64 hex digits) would not fit 80 columns.
SHORT_KEY_ID = 16


def config_dir() -> Path:
    """`~/.config/echoproof`: the signing key's and the trusted keys' default home."""
    return Path.home() / ".config" / "echoproof"


def default_key_path() -> Path:
    """`$ECHOPROOF_SIGNING_KEY`, else `~/.config/echoproof/signing-key.pem`."""
    env = os.environ.get(KEY_ENV)
    if env:
        return Path(env).expanduser()
    return config_dir() / "signing-key.pem"


def public_path(private_path: Path) -> Path:
    """Where the public key of `private_path` lives: `signing-key.pem` -> `signing-key.pub.pem`."""
    stem = private_path.name.removesuffix(".pem")
    return private_path.with_name(f"{stem}{PUBLIC_SUFFIX}")


def key_id(public_key: Ed25519PublicKey) -> str:
    """Hex SHA-256 of the raw public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def short_id(key_id: str) -> str:
    """A key id as the console shows it: its first 16 hex digits."""
    return key_id[:SHORT_KEY_ID]


def public_pem(public_key: Ed25519PublicKey) -> bytes:
    """A public key as SubjectPublicKeyInfo PEM."""
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_or_create_key(path: Path | None = None) -> Ed25519PrivateKey:
    """The private key at `path` (default: :func:`default_key_path`), created 0600 if absent."""
    path = (path or default_key_path()).expanduser()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            # O_EXCL: two runs creating the key at once must not both write one
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return load_or_create_key(path)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        public_path(path).write_bytes(public_pem(key.public_key()))
        return key
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise SignatureError(
            f"signing key {path} has mode {mode:04o}, expected 0600 (readable by its owner only)"
        )
    try:
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise SignatureError(f"signing key {path} is not an unencrypted PEM key: {exc}") from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise SignatureError(f"signing key {path} is {type(loaded).__name__}, expected Ed25519")
    key = loaded
    pub = public_path(path)
    if not pub.exists():
        pub.write_bytes(public_pem(key.public_key()))
    return key


def load_public_key(data: bytes, name: str) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM bytes; `name` words the error."""
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        raise SignatureError(f"{name} is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError(f"{name} holds a {type(key).__name__}, expected an Ed25519 key")
    return key


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def sign_envelope(payload: bytes, key: Ed25519PrivateKey, payload_type: str) -> dict[str, Any]:
    """A DSSE envelope over `payload` of `payload_type`, signed by `key`."""
    sig = key.sign(pae(payload_type, payload))
    return {
        "payload": base64.b64encode(payload).decode("ascii"),
        "payloadType": payload_type,
        "signatures": [
            {"keyid": key_id(key.public_key()), "sig": base64.b64encode(sig).decode("ascii")}
        ],
    }


def envelope_bytes(envelope: dict[str, Any]) -> bytes:
    """The envelope as written to `report.dsse.json` (`ENVELOPE`)."""
    return json.dumps(envelope, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise SignatureError(f"{ENVELOPE} {what} is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"{ENVELOPE} {what} is not valid base64") from None


def _signatures(envelope: Any) -> list[dict[str, Any]]:
    if not isinstance(envelope, dict):
        raise SignatureError(f"{ENVELOPE} is not a JSON object, expected a DSSE envelope")
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or not signatures:
        raise SignatureError(f"{ENVELOPE} has no signature")
    for i, entry in enumerate(signatures):
        if not isinstance(entry, dict):
            raise SignatureError(f"{ENVELOPE} signatures[{i}] is not an object")
    return signatures


def key_ids(envelope: Any) -> list[str]:
    """The key ids an envelope's signatures claim (not yet verified)."""
    return [str(entry.get("keyid")) for entry in _signatures(envelope)]


def open_envelope(
    envelope: Any, public_key: Ed25519PublicKey, payload_types: Collection[str]
) -> tuple[str, bytes]:
    """The payload type and payload of a DSSE envelope whose signature by `public_key`
    verifies, the type one of `payload_types`; else raises."""
    signatures = _signatures(envelope)
    payload_type = envelope.get("payloadType")
    if not isinstance(payload_type, str) or payload_type not in payload_types:
        expected = " or ".join(repr(t) for t in payload_types)
        raise SignatureError(f"{ENVELOPE} payloadType is {payload_type!r}, expected {expected}")
    payload = _b64(envelope.get("payload"), "payload")
    wanted = key_id(public_key)
    for i, entry in enumerate(signatures):
        if entry.get("keyid") != wanted:
            continue
        sig = _b64(entry.get("sig"), f"signatures[{i}].sig")
        try:
            public_key.verify(sig, pae(payload_type, payload))
        except InvalidSignature:
            raise SignatureError(
                f"{ENVELOPE} signature by key {short_id(wanted)}... does not verify "
                "(the report or the signature was changed)"
            ) from None
        return payload_type, payload
    found = ", ".join(short_id(k) + "..." for k in key_ids(envelope))
    raise SignatureError(f"{ENVELOPE} is signed by key {found}, expected key {short_id(wanted)}...")
