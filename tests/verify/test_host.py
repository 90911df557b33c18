"""Host figures: reading host.csv, the report's host block, and attributing failures to stalls."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest

import verify
from benchmarks import _synth as synth
from verify import evidence as ev
from verify.host import (
    Failure,
    Stall,
    Window,
    attribute,
    draining,
    gap_window,
    latency_window,
    lost_window,
)
from verify.host import verdict as host_verdict

MakeRun = Callable[..., Path]


def test_a_quiet_run_passes_with_a_host_block(make_run: MakeRun) -> None:
    """A synthetic run with quiet host figures: host block filled in, no stall, verdict passed."""
    run = make_run(synth.Spec())
    result = verify.write_report(run)
    host = result.report["host"]
    assert host["available"] and host["windows"] == 6
    assert host["stalls"] == []
    assert host["figures"]["support_send_late_ms"] == {"max": 1.2, "p99": 1.2, "max_at_s": 1.0}
    assert result.status == "passed" and result.reason is None
    assert verify.check(run)[0].status == "ok"


def test_a_run_without_host_file_still_verifies(make_run: MakeRun) -> None:
    """A run made before host figures (no host.csv, no manifest entry): host unavailable."""
    run = make_run(synth.Spec(host_stalls=None))
    result = verify.write_report(run)
    assert result.report["host"]["available"] is False
    assert result.status == "passed"
    assert verify.check(run)[0].ok


def test_latency_failure_during_a_long_stall_is_inconclusive(make_run: MakeRun) -> None:
    """Latency over the limit after a stall longer than the excess: inconclusive, stall named."""
    spec = synth.Spec(
        thresholds={"max_latency_median_ms": 30.0},  # the injected 42.37 ms fails it
        host_stalls=[(1.0, "support_send_late_ms", 540.0)],
    )
    run = make_run(spec)
    result = verify.write_report(run)
    assert result.status == "inconclusive"
    assert result.reason == (
        "support's sending process was 540 ms behind real time at 1.0 s; rerun on a quieter machine"
    )
    assert result.report["verdict"]["failures"]  # every figure stays as measured
    checked = verify.check(run)[0]
    assert checked.status == "inconclusive" and checked.reason == result.reason


def test_a_stall_shorter_than_the_excess_does_not_excuse_it(make_run: MakeRun) -> None:
    """A 25 ms stall cannot explain latency 32 ms over the limit: the run FAILs."""
    spec = synth.Spec(
        thresholds={"max_latency_median_ms": 10.0},
        host_stalls=[(1.0, "loop_lag_ms", 25.0)],
    )
    result = verify.write_report(make_run(spec))
    assert result.status == "failed"
    assert all(s is None for s in result.report["verdict"]["host_stalls"])


def test_a_stall_after_the_late_bursts_does_not_excuse_them(make_run: MakeRun) -> None:
    """Only a stall before a burst arrived can have delayed it."""
    spec = synth.Spec(
        duration_s=6.0,
        thresholds={"max_latency_median_ms": 30.0},
        host_stalls=[(6.0, "customer_send_late_ms", 900.0)],
    )
    result = verify.write_report(make_run(spec))
    assert result.status == "failed"


def test_packet_loss_is_never_the_hosts_doing() -> None:
    """A packet-loss failure stays a FAIL whatever the host did."""
    stall = Stall(3.0, "support_send_late_ms", 800.0, 20.0)
    failures = [Failure("support->customer: packet loss 5 %", host_may_explain=False)]
    assert attribute(failures, [stall]) == [None]
    assert host_verdict(failures, [stall])["status"] == "failed"


def test_one_unexplained_failure_keeps_the_run_failed() -> None:
    """Inconclusive needs every failure explained; one without a stall makes it a FAIL."""
    stall = Stall(3.0, "customer_send_late_ms", 300.0, 20.0)
    explained = Failure("gap", (gap_window(2.5, 400.0),))
    unexplained = Failure("lost", (lost_window(40.0),))
    result = host_verdict([explained, unexplained], [stall])
    assert result["status"] == "failed"
    assert result["host_stalls"] == [stall.line, None]
    assert host_verdict([explained], [stall])["status"] == "inconclusive"


@pytest.mark.parametrize(
    ("window", "stall_ms", "at_s", "explains"),
    [
        (gap_window(10.0, 400.0), 100.0, 9.0, True),  # a quarter of the gap, just before it
        (gap_window(10.0, 400.0), 99.0, 9.0, False),  # shorter than a quarter
        (gap_window(10.0, 400.0), 500.0, 15.0, False),  # long but far after it
        (lost_window(10.0), 150.0, 11.5, True),
        (lost_window(10.0), 149.0, 11.5, False),
        (latency_window(20.0, 100.0), 120.0, 2.0, True),  # long before: the buffer keeps it
        (latency_window(20.0, 100.0), 80.0, 2.0, False),
        (Window(-math.inf, 5.0, 0.0), 30.0, 6.0, True),  # the window ending at 6 began at 5
        (Window(-math.inf, 5.0, 0.0), 30.0, 6.5, False),
    ],
)
def test_windows(window: Window, stall_ms: float, at_s: float, explains: bool) -> None:
    """A stall explains a window when it is inside it and long enough."""
    stall = Stall(at_s, "loop_lag_ms", stall_ms, 20.0)
    assert (attribute([Failure("x", (window,))], [stall]) == [stall]) is explains


def test_every_stall_figure_has_a_line() -> None:
    """Each bounded figure reads as a sentence naming who stalled, how long and when."""
    lines = {fig: Stall(12.34, fig, 87.6, 20.0).line for fig in verify.host.BOUNDS}
    assert lines["support_send_late_ms"] == (
        "support's sending process was 88 ms behind real time at 12.3 s"
    )
    assert lines["customer_recv_gap_ms"].startswith("customer's receiving side got no audio")
    assert "event loop" in lines["loop_lag_ms"]
    assert "embedded server" in lines["server_wait_ms"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("t_ns,", "time,", 1), "host.csv header is"),
        (lambda t: t.replace("\n1002", "\n999", 1), "is not after the previous window"),
        (lambda t: t.replace(",1.500,", ",-1.500,", 1), "negative or infinite figure"),
        (lambda t: t.replace(",1.500,", ",abc,", 1), "expected an integer t_ns and numbers"),
        (lambda t: t.replace(",1.500,", ",1.5,7,", 1), "fields, expected 12"),
    ],
)
def test_bad_host_files_are_named(
    make_run: MakeRun, edit: Callable[[str], str], message: str
) -> None:
    """A host.csv that breaks the contract raises an EvidenceError naming the file and line."""
    run = make_run(synth.Spec())
    path = run / ev.HOST
    path.write_text(edit(path.read_text()))
    with pytest.raises(verify.EvidenceError, match=message):
        ev.read_host(path)


def test_a_changed_byte_in_host_csv_fails_the_check(make_run: MakeRun) -> None:
    """host.csv is hashed and signed: one changed digit FAILs python -m verify."""
    run = make_run(synth.Spec())
    verify.write_report(run)
    path = run / ev.HOST
    text = path.read_text()
    path.write_text(text.replace(",1.500,", ",1.600,", 1))
    result = verify.check(run)[0]
    assert result.status == "fail"
    assert "host.csv has changed since it was signed" in result.reason


def test_a_stored_verdict_that_hides_a_stall_fails(make_run: MakeRun, session_key: Path) -> None:
    """A report claiming FAIL where the evidence says INCONCLUSIVE (or back) is caught."""
    spec = synth.Spec(
        thresholds={"max_latency_median_ms": 30.0},
        host_stalls=[(1.0, "support_send_late_ms", 540.0)],
    )
    run = make_run(spec)
    verify.write_report(run, key_path=session_key)
    report = json.loads((run / ev.REPORT).read_bytes())
    report["verdict"].update(status="failed", reason=None)
    synth.resign(run, report, session_key)
    result = verify.check(run)[0]
    assert result.status == "fail"
    assert "verdict is failed, the evidence gives inconclusive" in result.reason


def test_a_gap_while_the_buffer_drains_looks_back_to_the_start() -> None:
    """A gap seconds after a stall, while latency is still raised, is the stall's doing; the
    same gap with latency back at its lowest is not."""
    bursts = [
        {"state": "detected", "sent_s": 1.0, "latency_ms": 55.0},
        {"state": "detected", "sent_s": 6.0, "latency_ms": 480.0},
    ]
    stall = Stall(2.0, "support_send_late_ms", 494.0, 20.0)
    raised = gap_window(12.8, 150.0, draining=draining(bursts, 55.0, 12.8))
    assert attribute([Failure("gap", (raised,))], [stall]) == [stall]
    bursts[1]["latency_ms"] = 60.0
    settled = gap_window(12.8, 150.0, draining=draining(bursts, 55.0, 12.8))
    assert attribute([Failure("gap", (settled,))], [stall]) == [None]
