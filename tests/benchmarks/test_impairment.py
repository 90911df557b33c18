"""The impairment benchmark's reference receiver: swapping its recording into a copied run."""

from __future__ import annotations

import asyncio
import json
import statistics
from pathlib import Path

import pytest

import verify
from benchmarks import _synth as synth
from benchmarks import impairment
from tests.conftest import scaled

TO_SUPPORT = "support-from-customer"


def _medians(run_dir: Path) -> dict[str, float]:
    return {d["to"]: d["latency_ms"]["median"] for d in verify.analyse(run_dir)["directions"]}


def test_with_reference_replaces_only_the_support_direction(tmp_path: Path) -> None:
    """The copy's customer -> support figures are the reference's; the rest, the original stay."""
    run = synth.make_run(tmp_path / "run", synth.Spec(customer=synth.Direction(delay_ms=142.37)))
    other = synth.make_run(tmp_path / "ref", synth.Spec(customer=synth.Direction(delay_ms=42.37)))
    copy = impairment.with_reference(
        run, other / f"{TO_SUPPORT}.wav", other / f"{TO_SUPPORT}.arrivals.csv", tmp_path / "copy"
    )
    swapped, original = _medians(copy), _medians(run)
    assert swapped["support"] == pytest.approx(42.37, abs=0.05)
    assert original["support"] == pytest.approx(142.37, abs=0.05)
    assert swapped["customer"] == original["customer"]
    figures = impairment._figures(verify.analyse(run))
    reference = impairment._figures(verify.analyse(copy))
    shifts = impairment._per_burst_shift(figures["to_support"], reference["to_support"])
    assert len(shifts) == figures["to_support"]["bursts_detected"] > 0
    assert statistics.median(shifts) == pytest.approx(100.0, abs=0.05)
    assert sorted(p.name for p in copy.iterdir()) == sorted(p.name for p in run.iterdir())


def test_with_reference_refuses_an_existing_destination(tmp_path: Path) -> None:
    """A destination that exists is never overwritten."""
    run = synth.make_run(tmp_path / "run")
    (tmp_path / "copy").mkdir()
    with pytest.raises(FileExistsError):
        impairment.with_reference(
            run, run / f"{TO_SUPPORT}.wav", run / f"{TO_SUPPORT}.arrivals.csv", tmp_path / "copy"
        )


async def test_reference_hears_what_the_support_agent_hears(tmp_path: Path) -> None:
    """A real run without delay: the in-process reference hears every burst at the same time."""
    async with asyncio.timeout(scaled(120)):
        report, run_dir, _, ref = await impairment._case([], 4.0, tmp_path, reference=True)
    assert ref is not None
    support = impairment._figures(report)["to_support"]
    reference = impairment._reference_figures(run_dir, ref)
    assert reference["bursts_detected"] == support["bursts_detected"] > 0
    assert reference["tone_hz"] == pytest.approx(440.0, abs=5)  # the Customer, not the Support
    # Identical packets at the same moment, one playout clock: the same latency, up to what two
    # jitter buffers adapting each on its own make of them (up to 10.6 ms seen on a busy host;
    # a reference hearing another stream or another delay would be hundreds of ms off).
    shifts = impairment._per_burst_shift(support, reference)
    assert abs(statistics.median(shifts)) < 20.0
    await ref.aclose()  # already closed by the run: safe twice


def test_loss_interval_is_the_exact_binomial_one() -> None:
    """0 of 100 packets lost: the exact 95% interval is [0, 1 - 0.025^(1/100)], in percent."""
    low, high = impairment._exact_interval(0, 100)
    assert low == 0.0
    assert high == pytest.approx(100 * (1 - 0.025 ** (1 / 100)), rel=1e-9)
    low, high = impairment._exact_interval(25, 500)  # 5 % measured: 5 % is inside
    assert low < impairment.LOSS_PCT < high


def test_loss_run_pools_the_wire_and_the_audio(tmp_path: Path) -> None:
    """Packets lost, concealment without its silent part, and lost bursts add over directions."""
    run = synth.make_run(tmp_path / "run", synth.Spec(customer=synth.Direction(lost=(2,))))
    stats = json.loads((run / "rtc-stats.json").read_text())
    for role, lost, concealed, silent in (("support", 10, 4800, 960), ("customer", 30, 0, 0)):
        (entry,) = stats[role]["final"]["subscriber_stats"]
        entry["inbound_rtp"]["received"]["packets_lost"] = str(lost)
        entry["inbound_rtp"]["inbound"]["concealed_samples"] = str(concealed)
        entry["inbound_rtp"]["inbound"]["silent_concealed_samples"] = str(silent)
    (run / "rtc-stats.json").write_text(json.dumps(stats))
    report = verify.analyse(run)
    figures = impairment._loss_run(report, run, ["x: packet loss 9 % exceeds the maximum 1 %"])
    rtc = [d["rtc"] for d in report["directions"]]
    packets = sum(r["packets_received"] for r in rtc) + 40
    samples = sum(r["total_samples_received"] for r in rtc)
    pooled = figures["pooled"]
    assert (pooled["packets"], pooled["packets_lost"]) == (packets, 40)
    assert pooled["packet_loss_pct"] == pytest.approx(100 * 40 / packets)
    assert pooled["concealed_pct"] == pytest.approx(100 * 4800 / samples)
    assert pooled["audible_concealed_pct"] == pytest.approx(100 * 3840 / samples)
    assert pooled["bursts_lost"] == 1 and figures["failed_naming_loss"]
