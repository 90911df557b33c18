"""A finished run folder, from the node that made it to `--out` on the driver's machine.

On the node, `seal` completes the manifest (the node, and the driver's `--out` as the config's
`out_dir`, since the folder is staged elsewhere there), `listing` gives each file's size and
SHA-256, and `chunks` reads the files in pieces of CHUNK_BYTES (a run folder is about 8 MB per
20 s of talk: one Ray object each would be too big for long runs). On the driver, `Receiver`
writes them to a hidden folder beside the run folders, checks every size and SHA-256 against the
node's listing, and only then renames it to the run folder: a folder that `python -m verify`
sees arrived whole.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from pipeline.errors import PipelineError
from pipeline.recording import evidence

CHUNK_BYTES = 1 << 20


class TransferError(PipelineError):
    """A run folder did not arrive as its node listed it."""


def seal(run_dir: Path, node: dict[str, Any], out_dir: str, embedded: bool) -> None:
    """Record in the run's manifest which node made it, where the driver keeps it, and whether
    the run started its server (the node's worker process could not know)."""
    path = run_dir / evidence.MANIFEST
    data = json.loads(path.read_text(encoding="utf-8"))
    data["node"] = node
    data["embedded_server"] = embedded
    if isinstance(data.get("config"), dict):
        data["config"]["out_dir"] = out_dir
    evidence.write_json_atomic(path, data)


def listing(run_dir: Path) -> dict[str, list[Any]]:
    """Every file of the folder (relative POSIX path): [size, SHA-256 hex]."""
    out: dict[str, list[Any]] = {}
    for path in sorted(p for p in run_dir.rglob("*") if p.is_file()):
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while block := f.read(CHUNK_BYTES):
                digest.update(block)
        out[path.relative_to(run_dir).as_posix()] = [path.stat().st_size, digest.hexdigest()]
    return out


def chunks(run_dir: Path, names: list[str]) -> Iterator[tuple[str, bytes]]:
    """Each file's bytes in pieces of at most CHUNK_BYTES, file by file (an empty file: one
    empty piece)."""
    for name in names:
        with (run_dir / name).open("rb") as f:
            first = True
            while (block := f.read(CHUNK_BYTES)) or first:
                first = False
                yield name, block


class Receiver:
    """One run folder arriving on the driver: `open` with the node's listing, `write` each
    piece in order, `finish` to check and publish it (or `discard`)."""

    def __init__(self, out_dir: Path, run_id: str) -> None:
        self.final = out_dir / run_id
        self.partial = out_dir / f".{run_id}.partial"
        self._listed: dict[str, list[Any]] = {}
        self._hashes: dict[str, Any] = {}

    def open(self, listed: dict[str, list[Any]]) -> None:
        """Start receiving the files `listed` ([size, SHA-256] by relative path)."""
        for name in listed:
            parts = PurePosixPath(name).parts
            if not parts or name.startswith("/") or ".." in parts:
                raise TransferError(f"the node listed a file outside its run folder: {name!r}.")
        self.discard()
        self.partial.mkdir(parents=True)
        self._listed = dict(listed)
        self._hashes = {name: hashlib.sha256() for name in listed}

    def write(self, name: str, data: bytes) -> None:
        """Append a piece of file `name`."""
        if name not in self._hashes:
            raise TransferError(f"the node sent a file it had not listed: {name!r}.")
        path = self.partial / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab") as f:
            f.write(data)
        self._hashes[name].update(data)

    def finish(self) -> Path:
        """Check every file against the listing and publish the run folder; TransferError
        naming the first file that differs."""
        for name, (size, sha256) in self._listed.items():
            path = self.partial / name
            got = path.stat().st_size if path.exists() else -1
            if got != size or self._hashes[name].hexdigest() != sha256:
                raise TransferError(
                    f"{name} arrived with {max(got, 0)} bytes and SHA-256 "
                    f"{self._hashes[name].hexdigest()[:12]}..., the node sent {size} bytes with "
                    f"{sha256[:12]}..."
                )
        self.partial.rename(self.final)
        return self.final

    def discard(self) -> None:
        """Drop what arrived of an unfinished folder; safe to call twice."""
        shutil.rmtree(self.partial, ignore_errors=True)
