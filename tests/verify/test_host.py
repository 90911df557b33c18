"""Host figures: reading host.csv, the report's host block, and attributing failures to stalls."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import verify
from benchmarks import _synth as synth
from verify import evidence as ev
from verify.host import (
    Disturbance,
    Failure,
    Stall,
    Window,
    attribute,
    disturbances,
    freezes,
    gap_window,
    latency_window,
    lost_window,
)
from verify.host import verdict as host_verdict

MakeRun = Callable[..., Path]


def _span(stall: Stall) -> Disturbance:
    """The disturbance of a stall in a run with no timed bursts: its own window."""
    return Disturbance(stall.at_s - 1.0, stall.at_s, stall.value, False, stall.line)


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


def test_a_host_file_without_the_agent_worker_columns_still_verifies(make_run: MakeRun) -> None:
    """A host.csv written before the agent worker's columns (12 of them): read, not measured."""
    run = make_run(synth.Spec())
    path = run / ev.HOST
    lines = [",".join(line.split(",")[:12]) for line in path.read_text().splitlines()]
    path.write_text("\n".join(lines) + "\n")
    assert np.isnan(ev.read_host(path).columns["agent_wait_ms"]).all()
    result = verify.write_report(run)
    assert result.status == "passed" and result.report["host"]["figures"]["agent_wait_ms"] is None
    assert verify.check(run)[0].ok


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
    """A packet-loss failure stays a FAIL whatever the host did, even in a freeze."""
    stall = Stall(3.0, "support_send_late_ms", 800.0, 20.0)
    frozen = Disturbance(2.0, None, 800.0, True, "frozen")
    failures = [Failure("support->customer: packet loss 5 %", host_may_explain=False)]
    assert attribute(failures, {"": [_span(stall), frozen]}) == [None]
    assert host_verdict(failures, {"": [_span(stall)]})["status"] == "failed"


def test_one_unexplained_failure_keeps_the_run_failed() -> None:
    """Inconclusive needs every failure explained; one without a stall makes it a FAIL."""
    stall = Stall(3.0, "customer_send_late_ms", 300.0, 20.0)
    explained = Failure("gap", (gap_window(2.5, 400.0),))
    unexplained = Failure("lost", (lost_window(40.0),))
    result = host_verdict([explained, unexplained], {"": [_span(stall)]})
    assert result["status"] == "failed"
    assert result["host_stalls"] == [stall.line, None]
    assert host_verdict([explained], {"": [_span(stall)]})["status"] == "inconclusive"


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
    span = _span(Stall(at_s, "loop_lag_ms", stall_ms, 20.0))
    assert (attribute([Failure("x", (window,))], {"": [span]}) == [span]) is explains


def test_a_failure_is_explained_by_its_own_directions_disturbances_only() -> None:
    """A gap in one direction is not excused by a span that only the other direction had."""
    span = _span(Stall(3.0, "customer_send_late_ms", 300.0, 20.0))
    gap = Failure("gap", (gap_window(2.5, 400.0),), direction="support->customer")
    assert attribute([gap], {"customer->support": [span], "support->customer": []}) == [None]
    assert attribute([gap], {"support->customer": [span]}) == [span]


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
        (lambda t: t.replace(",1.500,", ",1.5,7,", 1), "fields, expected 14"),
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


def _host_block(stalls: list[Stall], frozen: list[dict] | None = None) -> dict:
    return {"stalls": [s.to_dict() for s in stalls], "freezes": frozen or []}


def test_a_disturbance_lasts_until_latency_is_back_near_its_lowest() -> None:
    """A stall disturbs a direction from its window's start until the first burst sent after it
    within 20 ms of the lowest latency; a gap seconds later, while the buffer still drains, is
    the stall's doing, and one after the drain is not."""
    bursts = [
        {"state": "detected", "sent_s": 1.0, "latency_ms": 55.0},
        {"state": "detected", "sent_s": 3.0, "latency_ms": 480.0},
        {"state": "lost", "sent_s": 4.0},
        {"state": "detected", "sent_s": 8.0, "latency_ms": 200.0},
        {"state": "detected", "sent_s": 14.0, "latency_ms": 74.0},
        {"state": "detected", "sent_s": 15.0, "latency_ms": 58.0},
    ]
    stall = Stall(2.0, "support_send_late_ms", 494.0, 20.0)
    [span] = disturbances(_host_block([stall]), bursts)
    assert (span.start_s, span.end_s, span.stall_ms, span.freeze) == (1.0, 14.0, 494.0, False)
    during = Failure("gap", (gap_window(12.8, 150.0),), direction="d")
    after = Failure("gap", (gap_window(18.5, 150.0),), direction="d")
    assert attribute([during, after], {"d": [span]}) == [span, None]
    bursts[-2]["latency_ms"] = 200.0
    bursts[-1]["latency_ms"] = 200.0
    [never] = disturbances(_host_block([stall]), bursts)
    assert never.end_s is None  # latency never settled: disturbed to the end of the run
    assert disturbances(_host_block([stall]), [])[0].end_s == 2.0  # no bursts: its window


def _host_table(rows: list[dict[str, float]]) -> ev.HostTable:
    """A host.csv of quiet 1 s windows with the given figures changed, window k ending at k+1 s."""
    quiet = {"window_ms": 1000.0, "customer_send_late_ms": 0.5, "support_send_late_ms": 0.5,
             "customer_recv_gap_ms": 11.0, "support_recv_gap_ms": 11.0, "loop_lag_ms": 1.5,
             "capture_wait_ms": 50.0, "loop_thread_wait_ms": 10.0, "server_wait_ms": 5.0,
             "steal_pct": 0.0, "pressure_pct": 3.0,
             "agent_cpu_ms": np.nan, "agent_wait_ms": np.nan}  # fmt: skip
    full = [{**quiet, **row} for row in rows]
    columns = {name: np.array([row[name] for row in full]) for name in quiet}
    return ev.HostTable(t_ns=np.arange(1, len(rows) + 1, dtype=np.int64) * 10**9, columns=columns)


FROZEN = {"customer_send_late_ms": 490.0, "support_send_late_ms": 495.0, "loop_lag_ms": 497.0,
          "customer_recv_gap_ms": 511.0, "support_recv_gap_ms": 515.0}  # fmt: skip


def test_a_freeze_is_every_figure_stalled_in_one_window() -> None:
    """Senders, event loop and receivers all beyond their bounds in one window: a freeze of the
    smallest of them, starting where that window started."""
    table = _host_table([{}, {}, {**FROZEN, "window_ms": 1290.0}, {}])
    [freeze] = freezes(table, 0)
    assert (freeze.start_s, freeze.at_s, freeze.stood_ms) == (pytest.approx(1.71), 3.0, 490.0)
    assert freeze.line.startswith("the whole host stood still for 490 ms at 3.0 s")


def test_a_freeze_may_show_over_two_windows() -> None:
    """A stopped process shows each figure when it next acts: the loop lag in one window, the
    senders and receivers in the next are one freeze, starting in the window the sampler
    overran."""
    lag = {"loop_lag_ms": 786.0, "window_ms": 1592.0}
    rest = {k: v + 300 for k, v in FROZEN.items() if k != "loop_lag_ms"}
    [freeze] = freezes(_host_table([{}, {}, lag, rest, {}]), 0)
    assert (freeze.start_s, freeze.at_s, freeze.stood_ms) == (pytest.approx(1.408), 4.0, 786.0)


@pytest.mark.parametrize("missing", ["customer_send_late_ms", "loop_lag_ms", "support_recv_gap_ms"])
def test_one_part_of_the_run_stalled_is_no_freeze(missing: str) -> None:
    """A sender held (or a receiver, or the loop) while the rest kept time is a stall, not a
    freeze: every group of figures must have stalled."""
    quiet = _host_table([{}])
    partial = {k: v for k, v in FROZEN.items() if k != missing}
    partial[missing] = float(quiet.columns[missing][0])
    assert freezes(_host_table([{}, partial, {}]), 0) == []


def test_a_short_whole_process_stall_is_no_freeze() -> None:
    """Everything stalled, but for less than FREEZE_MIN_MS (the run's own start can do that):
    an ordinary stall, which explains only what its length can."""
    short = {k: 46.0 + (40.0 if "recv" in k else 0.0) for k in FROZEN}
    table = _host_table([short, {}, {}])
    assert freezes(table, 0) == []
    assert len(verify.host.stalls(table, 0)) == len(FROZEN)


def test_a_freeze_explains_whatever_its_drain_did() -> None:
    """Inside a freeze's span any failure of its direction is the freeze's, however long (a gap
    of 3 s after a 0.5 s freeze); after latency settled it is not; a stall of the same length
    would not excuse the 3 s gap."""
    table = _host_table([{}, {}, FROZEN, {}, {}, {}])
    host = {"stalls": [s.to_dict() for s in verify.host.stalls(table, 0)],
            "freezes": [f.to_dict() for f in freezes(table, 0)]}  # fmt: skip
    bursts = [
        {"state": "detected", "sent_s": 1.0, "latency_ms": 50.0},
        {"state": "detected", "sent_s": 4.0, "latency_ms": 500.0},
        {"state": "detected", "sent_s": 9.0, "latency_ms": 60.0},
    ]
    spans = disturbances(host, bursts)
    assert [(d.start_s, d.end_s, d.freeze) for d in spans] == [(2.0, 9.0, True)]
    long_gap = Failure("gap", (gap_window(5.0, 3000.0),), direction="d")
    late_gap = Failure("gap", (gap_window(12.0, 300.0),), direction="d")
    verdict = host_verdict([long_gap], {"d": spans})
    assert verdict["status"] == "inconclusive"
    assert verdict["reason"].startswith("the whole host stood still for 490 ms at 3.0 s")
    assert host_verdict([long_gap, late_gap], {"d": spans})["status"] == "failed"
    plain = Disturbance(2.0, 9.0, 490.0, False, "stall")
    assert attribute([long_gap], {"d": [plain]}) == [None]
