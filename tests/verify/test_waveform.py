"""A recording as the page draws it: its envelope over the run's clock, where each moment of the
run lies in the file, and its regions, each playing from the right place in the file."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import verify
from benchmarks import _synth as synth
from tests.verify.agent_synth import AgentSpec, make_agent_run
from verify import evidence as ev
from verify import waveform

MakeRun = Callable[..., Path]


def _streams(run: Path, key: Path) -> tuple[dict[str, object], list[waveform.Stream]]:
    report = verify.write_report(run, key_path=key, html=False).report
    return report, waveform.streams(run, report)


def test_a_heard_burst_plays_from_its_onset_and_a_lost_one_where_it_was_due(
    make_run: MakeRun, tmp_path: Path
) -> None:
    run = make_run(synth.Spec(customer=synth.Direction(lost=(2,)), duration_s=8.0))
    report, streams = _streams(run, tmp_path / "k.pem")
    directions = report["directions"]
    assert isinstance(directions, list)
    assert [s.wav for s in streams] == [d["files"]["wav"] for d in directions]
    for s, d in zip(streams, directions, strict=True):
        bursts = {r.ref: r for r in s.regions if r.kind == "burst"}
        median_s = d["latency_ms"]["median"] / 1000
        for b in d["bursts"]:
            if b["state"] == "detected":
                region = bursts[b["burst"]]
                assert region.seek_s == pytest.approx(b["onset_sample"] / ev.SAMPLE_RATE, abs=1e-4)
                # drawn where it arrived on the run's clock: sent plus its latency
                arrived = b["sent_s"] + b["latency_ms"] / 1000
                assert region.start_s == pytest.approx(arrived, abs=0.002)
        lost = [r for r in s.regions if r.kind == "lost"]
        expected = [b for b in d["bursts"] if b["state"] == "lost"]
        assert [r.ref for r in lost] == [b["burst"] for b in expected]
        for r, b in zip(lost, expected, strict=True):
            assert r.start_s == pytest.approx(b["sent_s"] + median_s, abs=1e-3)


def test_the_envelope_spans_what_arrived_and_each_column_knows_its_place_in_the_file(
    make_run: MakeRun, tmp_path: Path
) -> None:
    run = make_run()
    _, streams = _streams(run, tmp_path / "k.pem")
    for s in streams:
        seek = np.array(s.seek_s)
        assert len(seek) == len(s.low) == len(s.high) == waveform.COLUMNS
        assert np.all(np.diff(seek) >= 0) and seek[0] >= 0 and seek[-1] <= s.duration_s
        # the bursts are sent at half of full scale: the envelope's peak says so
        assert max(s.high) == pytest.approx(synth.AMPLITUDE * waveform.LEVELS, abs=2)
        assert min(s.low) == pytest.approx(-synth.AMPLITUDE * waveform.LEVELS, abs=2)
        assert s.start_s <= min(r.start_s for r in s.regions)
        assert s.as_json()["seek"] == s.seek_s


def test_an_agent_runs_turns_answers_and_barge_ins_are_regions(
    tmp_path: Path, session_key: Path
) -> None:
    spec = AgentSpec(barge_in={2: 200.0}, stops_after_ms=300.0, reply_ms=200.0, answer_s=1.5)
    run = make_agent_run(tmp_path, spec)
    report, streams = _streams(run, session_key)
    conv = report["conversation"]
    assert isinstance(conv, dict)
    (heard,) = streams
    assert heard.wav == json.loads((run / ev.MANIFEST).read_text())["agent"]["files"]["wav"]
    kinds: dict[str, list[int | None]] = {}
    for r in heard.regions:
        kinds.setdefault(r.kind, []).append(r.ref)
    assert kinds["turn"] == [t["turn"] for t in conv["turns"]]
    assert kinds["answer"] == [t["turn"] for t in conv["turns"] if t["answer_start_s"] is not None]
    assert kinds["barge-in"] == [2]
    barge = next(r for r in heard.regions if r.kind == "barge-in")
    turn = conv["turns"][2]
    assert barge.end_s - barge.start_s == pytest.approx(turn["barge_in_stop_ms"] / 1000, abs=1e-3)
