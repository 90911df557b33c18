"""A run folder in pieces: what arrives whole is published, what differs from the node's listing
is named and never published (no Ray needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.cluster import transfer


def _folder(tmp_path: Path) -> Path:
    run = tmp_path / "node" / "run-1"
    run.mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({"config": {"out_dir": "/staging"}}))
    (run / "big.wav").write_bytes(bytes(range(256)) * (3 * transfer.CHUNK_BYTES // 256 + 7))
    (run / "empty.csv").write_bytes(b"")
    return run


def test_a_folder_arrives_whole_and_sealed(tmp_path: Path) -> None:
    """Sealed, listed, sent in pieces and received: the same bytes, the node and out_dir set."""
    run = _folder(tmp_path)
    transfer.seal(run, {"host": "h", "ray_node_id": "n"}, "/driver/out", True)
    listed = transfer.listing(run)
    pieces = list(transfer.chunks(run, list(listed)))
    assert max(len(data) for _, data in pieces) == transfer.CHUNK_BYTES
    assert ("empty.csv", b"") in pieces
    receiver = transfer.Receiver(tmp_path / "out", "run-1")
    receiver.open(listed)
    for name, data in pieces:
        receiver.write(name, data)
    final = receiver.finish()
    assert final == tmp_path / "out" / "run-1" and not receiver.partial.exists()
    for name in listed:
        assert (final / name).read_bytes() == (run / name).read_bytes()
    manifest = json.loads((final / "manifest.json").read_text())
    assert manifest["node"] == {"host": "h", "ray_node_id": "n"}
    assert manifest["config"]["out_dir"] == "/driver/out" and manifest["embedded_server"] is True


def test_a_damaged_piece_is_named_and_not_published(tmp_path: Path) -> None:
    """One flipped byte: TransferError naming the file; the run folder never appears."""
    run = _folder(tmp_path)
    listed = transfer.listing(run)
    receiver = transfer.Receiver(tmp_path / "out", "run-1")
    receiver.open(listed)
    for name, data in transfer.chunks(run, list(listed)):
        if name == "big.wav" and data:
            data = b"\xff" + data[1:]
        receiver.write(name, data)
    with pytest.raises(transfer.TransferError, match=r"^big\.wav arrived with"):
        receiver.finish()
    receiver.discard()
    receiver.discard()  # safe twice
    assert not (tmp_path / "out" / "run-1").exists() and not receiver.partial.exists()


def test_a_name_outside_the_folder_is_refused(tmp_path: Path) -> None:
    """A listing that names ../x is refused before anything is written."""
    receiver = transfer.Receiver(tmp_path / "out", "run-1")
    with pytest.raises(transfer.TransferError, match="outside its run folder"):
        receiver.open({"../escape": [1, "0" * 64]})
    assert not (tmp_path / "escape").exists()
