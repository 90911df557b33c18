"""The evidence contract is defined once (echoproof.contract); both stages use that definition."""

from __future__ import annotations

import textwrap
from pathlib import Path

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
