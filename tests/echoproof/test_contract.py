"""The evidence contract is defined once (echoproof.contract); both stages use that definition."""

from __future__ import annotations

import dataclasses
import re
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import dsp
from echoproof import contract as contract
from pipeline.recording import evidence as pev
from tests.conftest import python_output
from verify import evidence as vev

_SHARED = (
    "SAMPLE_RATE",
    "MANIFEST",
    "RTC_STATS",
    "EVENTS",
    "HOST",
    "HOST_COLUMNS",
)


@pytest.mark.parametrize("name", _SHARED)
def test_both_stages_use_the_contracts_objects(name: str) -> None:
    """pipeline.recording.evidence and verify.evidence re-export the contract's own objects, not
    copies."""
    assert getattr(pev, name) is getattr(contract, name)
    assert getattr(vev, name) is getattr(contract, name)


def test_writers_write_the_headers_readers_expect(tmp_path: Path) -> None:
    """A CSV the pipeline writes starts with the header verify checks."""
    for writer, header in (
        (pev.TimingWriter, contract.TIMING_HEADER),
        (pev.BurstsWriter, contract.BURSTS_HEADER),
        (pev.HostWriter, contract.HOST_COLUMNS),
    ):
        path = tmp_path / f"{writer.__name__}.csv"
        writer(path).close()
        assert path.read_text(encoding="utf-8") == ",".join(header) + "\n"


def test_the_transcripts_the_pipeline_writes_are_what_verify_reads(tmp_path: Path) -> None:
    """A line of pev.TranscriptLog (any text, UTF-8) reads back as one vev.Transcript."""
    path = tmp_path / contract.TRANSCRIPTS
    log = pev.TranscriptLog(path)
    attributes = {contract.SEGMENT: "SG_1", contract.FINAL: "true"}
    fields = {
        "t_ns": 5,
        "opened_ns": 3,
        "sender": "agent-1",
        "track": "customer",
        "attributes": attributes,
        "text": "où est mon remboursement",
        "complete": True,
    }
    log.write(**fields)
    log.close()
    [line] = vev.read_transcripts(path)
    assert dataclasses.asdict(line) == fields and line.final and line.segment == "SG_1"


def test_manifest_directions_name_every_per_direction_file() -> None:
    """`directions()` has the manifest's fields and the documented file names."""
    customer_to_support, support_to_customer = contract.directions()
    assert tuple(customer_to_support) == contract.DIRECTION_FIELDS
    assert customer_to_support == {
        "from": "customer",
        "to": "support",
        "wav": "support-from-customer.wav",
        "arrivals": "support-from-customer.arrivals.csv",
        "sent": "customer.sent.csv",
        "bursts": "customer.bursts.csv",
    }
    assert support_to_customer["wav"] == "customer-from-support.wav"


def test_dsp_defaults_agree_with_the_contract() -> None:
    """dsp keeps its own default rate and frame (it does not depend on the contract): they agree."""
    assert (dsp.SAMPLE_RATE, dsp.FRAME_SAMPLES) == (contract.SAMPLE_RATE, contract.FRAME_SAMPLES)


def test_contract_needs_only_the_standard_library() -> None:
    """A fresh interpreter imports the contract without loading any third-party module."""
    code = textwrap.dedent(
        """
        import sys
        before = set(sys.modules)
        from echoproof import contract
        loaded = {m.split(".")[0] for m in set(sys.modules) - before}
        print(sorted(loaded - set(sys.stdlib_module_names) - {"echoproof"}))
        """
    )
    assert python_output(code) == "[]"


def _manifest() -> contract.Manifest:
    return contract.Manifest(
        run_id="20261206T120000Z-0a1b2c3d",
        participants={"customer": {"identity": "customer-1", "tone_hz": 440.0}},
        directions=contract.directions(),
        burst={"duration_s": 0.3, "ramp_s": 0.005, "amplitude": 0.5},
        clock={"monotonic_ns": 1, "wall": "2026-12-06T12:00:00.000000Z"},
    )


def test_the_manifest_writes_every_field_once_and_reads_back_the_same() -> None:
    """Manifest.to_json lists every field of the typed manifest exactly once; from_json of it
    gives the same manifest; keys a newer writer added are left out."""
    manifest = _manifest()
    data = manifest.to_json()
    assert sorted(data) == sorted(f.name for f in dataclasses.fields(contract.Manifest))
    assert next(iter(data)) == "schema" and data["schema"] == contract.MANIFEST_SCHEMA
    assert contract.Manifest.from_json(data) == manifest
    assert contract.Manifest.from_json({**data, "from_the_future": 1}) == manifest


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("run_id"), "manifest.json has no field 'run_id'"),
        (
            lambda d: d.update(embedded_server="yes"),
            "field 'embedded_server' is 'yes', expected true",
        ),
        (
            lambda d: d.update(duration_s=True),
            "field 'duration_s' is True, expected a number or null",
        ),
        (lambda d: d.update(directions={}), "field 'directions' is {}, expected a list"),
    ],
)
def test_a_manifest_of_another_shape_is_one_sentence(
    change: Callable[[dict[str, Any]], object], message: str
) -> None:
    """A missing field or one of the wrong kind: ContractError naming it and what was expected."""
    data = _manifest().to_json()
    change(data)
    with pytest.raises(contract.ContractError, match=re.escape(message)):
        contract.Manifest.from_json(data)
