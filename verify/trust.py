"""Who signed a run, and whether that key is trusted.

A valid signature proves that the files are what its key signed, not whose key that is: anyone who
edits a recording can re-sign it with a key of their own and put its public key beside it. A key is
trusted when it is pinned (`--key`) or its public key is in the trusted-keys folder (`--trusted
DIR`, else `$ECHOPROOF_TRUSTED_KEYS`, else `~/.config/echoproof/trusted/`): one PEM file per key,
any name ending in `.pem`; `python -m verify --trust PUB` adds one as `<key id>.pub.pem`.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from verify import signing
from verify.errors import VerifyError

TRUSTED_ENV = "ECHOPROOF_TRUSTED_KEYS"
PINNED = "--key"  # `trusted_by` of a run checked against a pinned key


def home_dir() -> Path:
    """`~/.config/echoproof/trusted`."""
    return signing.config_dir() / "trusted"


def default_dir() -> Path:
    """`$ECHOPROOF_TRUSTED_KEYS`, else :func:`home_dir`."""
    env = os.environ.get(TRUSTED_ENV)
    if env:
        return Path(env).expanduser()
    return home_dir()


def pinned_key(key: str | Path | bytes | Ed25519PublicKey) -> Ed25519PublicKey:
    """A pinned public key given as an object, PEM bytes or a PEM file path."""
    if isinstance(key, Ed25519PublicKey):
        return key
    if isinstance(key, bytes):
        return signing.load_public_key(key, "the pinned key")
    return _read_key(Path(key), "pinned key")


def _read_key(path: Path, what: str) -> Ed25519PublicKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise VerifyError(f"{what} {path} cannot be read: {exc.strerror}") from None
    return signing.load_public_key(data, f"{what} {path}")


def trusted_keys(folder: Path) -> dict[str, Ed25519PublicKey]:
    """Every key of the trusted-keys folder by key id; none when the folder does not exist. A
    file there that is not an Ed25519 public key raises: a key meant to be trusted is not
    silently left out."""
    if not folder.is_dir():
        return {}
    keys = (_read_key(path, "trusted key") for path in sorted(folder.glob("*.pem")))
    return {signing.key_id(key): key for key in keys}


def add(public: Path, folder: Path) -> tuple[str, Path]:
    """Trust the public key in the PEM file `public`: copy it into `folder` (made if absent) as
    `<key id>.pub.pem`; returns the key id and the file."""
    key = _read_key(public, "public key")
    kid = signing.key_id(key)
    target = folder / f"{kid}{signing.PUBLIC_SUFFIX}"
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        target.write_bytes(signing.public_pem(key))
    except OSError as exc:
        raise VerifyError(f"cannot add the key to {folder}: {exc.strerror}") from None
    return kid, target


@dataclasses.dataclass(frozen=True)
class Signer:
    """The key that signed a run (None: not known) and what made it trusted: `PINNED`, the
    trusted-keys folder, or None (untrusted)."""

    key_id: str | None
    trusted_by: str | None = None

    @property
    def trusted(self) -> bool:
        return self.trusted_by is not None

    def note(self) -> str:
        """`key 0123456789abcdef pinned` (by `--key`), `... trusted` (in the trusted-keys
        folder), `... untrusted`, or `signer unknown`."""
        if self.key_id is None:
            return "signer unknown"
        word = {None: "untrusted", PINNED: "pinned"}.get(self.trusted_by, "trusted")
        return f"key {signing.short_id(self.key_id)} {word}"


def untrusted_reason(signer: Signer, folder: Path) -> str:
    """Why `--require-trusted` fails a run, in one sentence."""
    who = "its signer" if signer.key_id is None else f"key {signing.short_id(signer.key_id)}..."
    return (
        f"{who} is not trusted: pin it with --key or add it to {shown(folder)} "
        "(python -m verify --trust PUB)"
    )


def standing(key_id: str, folder: Path | None = None) -> str:
    """Whether `key_id` is in the trusted-keys folder, in words: `trusted (in DIR)`,
    `untrusted (not in DIR)` (the HTML report's line and a run's last)."""
    folder = folder or default_dir()
    try:
        trusted = key_id in trusted_keys(folder)
    except VerifyError as exc:
        return f"trust not known: {exc}"
    where = shown(folder)
    return f"trusted (in {where})" if trusted else f"untrusted (not in {where})"


def shown(path: Path) -> str:
    """`path` as the console and the HTML show it: the home folder as `~` (shorter, and no user
    name in a page that is shared)."""
    try:
        return str(Path("~") / path.expanduser().resolve().relative_to(Path.home().resolve()))
    except ValueError:
        return str(path)


@dataclasses.dataclass(frozen=True)
class Policy:
    """What a re-check trusts: a pinned key (then nothing else), else the folder's keys; with
    `required`, an untrusted signer FAILs the run."""

    pinned: Ed25519PublicKey | None
    folder: Path
    keys: dict[str, Ed25519PublicKey]
    required: bool = False

    @classmethod
    def load(
        cls,
        key: str | Path | bytes | Ed25519PublicKey | None = None,
        folder: str | Path | None = None,
        required: bool = False,
    ) -> Policy:
        """The policy of `--key`, `--trusted` and `--require-trusted`; raises
        :class:`VerifyError` when the pinned key or a trusted key is unusable."""
        where = default_dir() if folder is None else Path(folder).expanduser()
        pinned = None if key is None else pinned_key(key)
        return cls(pinned, where, {} if pinned is not None else trusted_keys(where), required)

    def signer(self, key_id: str) -> Signer:
        """The signer `key_id` (its signature verified), trusted or not."""
        if self.pinned is not None:
            return Signer(key_id, PINNED if key_id == signing.key_id(self.pinned) else None)
        return Signer(key_id, str(self.folder) if key_id in self.keys else None)
