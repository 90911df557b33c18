"""`python -m pipeline --agent` with the real example agent (examples/reply_agent.py) in its own
environment, registered over the embedded server's `/agent` and dispatched by the pipeline."""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import scaled
from tests.echoproof.sfu._agents import AGENT_NAME as AGENT
from tests.echoproof.sfu._agents import REPLY_AGENT, agent_python
from tests.pipeline.conftest import Finished, free_port, run_cli, write_config

WINDOW_S = 1.2


async def _agent_run(
    tmp_path: Path,
    duration_s: float,
    agent_env: dict[str, str],
    *args: str,
    **agent: Any,
) -> tuple[Finished, Path | None]:
    """One `python -m pipeline --agent` run on an embedded server it starts; its run folder."""
    port = free_port()
    config = write_config(
        tmp_path / "config.json",
        f"ws://127.0.0.1:{port}",
        "devkey",
        "secret-" + os.urandom(8).hex(),
        agent={"name": AGENT, "answer_window_s": WINDOW_S, **agent},
    )
    cmd = f"{agent_python()} {REPLY_AGENT} start"
    out = tmp_path / "recordings"
    finished = await run_cli(
        "--config", str(config), "--agent-cmd", cmd, "--duration", str(duration_s),
        "--out", str(out), *args,
        limit_s=scaled(duration_s + 150),
        env={"LIVEKIT_AGENT_NAME": AGENT, **agent_env},
    )  # fmt: skip
    runs = sorted(out.iterdir()) if out.is_dir() else []
    return finished, (runs[0] if runs else None)


def _report(run: Path) -> dict[str, Any]:
    return dict(json.loads((run / "report.json").read_text()))


async def test_the_response_moves_with_the_agents_reply_delay(tmp_path: Path) -> None:
    """Reply delays 200 and 500 ms in turn: the response moves by 300 ms +-5 ms.

    Both delays are in one conversation (ECHOPROOF_REPLY_DELAY_MS=200,500), and each 500 ms turn
    is compared with the 200 ms turn before it (the median of those differences): between two
    runs, or within one after a stall on a busy machine, the receivers' jitter buffers may
    settle at another depth (measured: the second leg 48.0 ms in one run, 38.1 ms in the next;
    the first leg 28 ms, then 108 ms from the eighth turn of a run on a loaded host).
    """
    finished, run = await _agent_run(
        tmp_path, 26.0, {"ECHOPROOF_REPLY_DELAY_MS": "200,500"}, answer_window_s=1.5
    )
    assert finished.code == 0, finished.stdout + finished.stderr
    assert run is not None
    conv = _report(run)["conversation"]
    assert conv["turns_unanswered"] == 0 and conv["turns_answered"] >= 12
    assert conv["kind"] == "AGENT" and conv["greeting_ms"] is not None
    response = [t["response_ms"] for t in conv["turns"]]
    moved = statistics.median(b - a for a, b in zip(response[::2], response[1::2], strict=False))
    print(f"responses {response}: moved by {moved:.2f} ms")
    assert moved == pytest.approx(300, abs=5), response


async def test_the_customer_says_its_files_in_turn(tmp_path: Path) -> None:
    """Two --say files (WAV at 16 kHz, FLAC at 44.1 kHz) said in turn, each answered, hashed."""
    import hashlib

    import numpy as np
    import soundfile

    files = []
    for name, rate, seconds in (("hello.wav", 16_000, 0.4), ("question.flac", 44_100, 0.7)):
        t = np.arange(round(rate * seconds)) / rate
        soundfile.write(tmp_path / name, 0.3 * np.sin(2 * np.pi * 300 * t), rate)
        files.append(tmp_path / name)
    finished, run = await _agent_run(tmp_path, 12.0, {}, "--say", *map(str, files))
    assert finished.code == 0, finished.stdout + finished.stderr
    assert run is not None
    turns = _report(run)["conversation"]["turns"]
    assert len(turns) >= 4 and all(t["state"] == "answered" for t in turns)
    assert [t["source"] for t in turns[:4]] == ["hello.wav", "question.flac"] * 2
    digest = hashlib.sha256(files[1].read_bytes()).hexdigest()
    assert turns[1]["sha256"] == digest
    assert turns[1]["sent_end_s"] - turns[1]["sent_start_s"] == pytest.approx(0.7, abs=1e-3)


async def test_an_agent_that_never_answers_fails_naming_the_turns(tmp_path: Path) -> None:
    """ECHOPROOF_REPLY_MODE=silent: exit 1, the FAIL line names every unanswered turn."""
    finished, run = await _agent_run(tmp_path, 8.0, {"ECHOPROOF_REPLY_MODE": "silent"})
    assert finished.code == 1, finished.stdout + finished.stderr
    assert run is not None
    conv = _report(run)["conversation"]
    assert conv["turns_answered"] == 0 and conv["turns_sent"] >= 3
    turns = ", ".join(str(t) for t in range(conv["turns_sent"]))
    assert f"(turn {turns}: no audio within the 1.2 s answer window)" in finished.stdout
    assert f"agent {AGENT} was never heard" in finished.stdout


async def test_a_crashed_agent_leaves_valid_evidence_and_a_report_saying_so(
    tmp_path: Path,
) -> None:
    """The agent's job exits 4 s after joining: the run completes, verify names the departure."""
    finished, run = await _agent_run(tmp_path, 10.0, {"ECHOPROOF_REPLY_CRASH_AFTER_S": "4"})
    assert finished.code == 1, finished.stdout + finished.stderr
    assert run is not None
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["agent"]["worker"]["log"]
    conv = _report(run)["conversation"]
    assert conv["left_s"] is not None and conv["turns_answered"] >= 1
    assert conv["turns_unanswered"] >= 1
    assert f"agent {AGENT} left the room at" in finished.stdout
    from verify import check

    [result] = check(run)
    assert result.status == "fail" and "left the room" in result.reason
    assert "changed" not in result.reason and "missing" not in result.reason


async def test_a_dispatch_no_worker_takes_fails_within_its_bound(tmp_path: Path) -> None:
    """No worker registered under the name: exit 3 within the dispatch timeout, one sentence."""
    port = free_port()
    config = write_config(
        tmp_path / "config.json", f"ws://127.0.0.1:{port}", "devkey", "secret",
        agent={"name": "nobody-here", "dispatch_timeout_s": 3, "answer_window_s": 1.2},
    )  # fmt: skip
    t0 = time.monotonic()
    finished = await run_cli(
        "--config", str(config), "--duration", "5", "--out", str(tmp_path / "rec"),
        limit_s=scaled(90),
    )  # fmt: skip
    assert finished.code == 3, finished.stdout + finished.stderr
    assert "no worker took the dispatch of agent 'nobody-here' within 3 s" in finished.stderr
    assert time.monotonic() - t0 < scaled(60)
