"""Calls to a real agent under test, for end-to-end tests of any agent: `python -m pipeline
--agent NAME --agent-cmd CMD` on an embedded server the run starts, its run folders and reports,
and caller scripts to give it.

    agent = reply_agent(ECHOPROOF_REPLY_MS="4000")      # or AgentUnderTest(name, cmd, env)
    finished, runs = await call(tmp_path, agent, 12.0, "--script", str(path), answer_window_s=2)
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from tests.conftest import scaled
from tests.echoproof.sfu._agents import AGENT_NAME, REPLY_AGENT, agent_python
from tests.pipeline.conftest import Finished, free_port, run_cli, write_config


@dataclasses.dataclass(frozen=True)
class AgentUnderTest:
    """An agent the run starts: its name, the worker's command, the worker's environment."""

    name: str
    cmd: str
    env: dict[str, str] = dataclasses.field(default_factory=dict)


def reply_agent(**env: str) -> AgentUnderTest:
    """examples/reply_agent.py in the agents' venv (skips without it), with `env` (its
    ECHOPROOF_REPLY_* settings)."""
    cmd = f"{agent_python()} {REPLY_AGENT} start"
    return AgentUnderTest(AGENT_NAME, cmd, {"LIVEKIT_AGENT_NAME": AGENT_NAME, **env})


async def call(
    tmp_path: Path, agent: AgentUnderTest, duration_s: float, *args: str, **block: Any
) -> tuple[Finished, list[Path]]:
    """One run of `duration_s` against `agent` (`block`: more of config.json's `agent` block,
    `args`: more options); the CLI's outcome and the run folders, in order."""
    config = write_config(
        tmp_path / "config.json",
        f"ws://127.0.0.1:{free_port()}",
        "devkey",
        "secret-" + os.urandom(8).hex(),
        agent={"name": agent.name, **block},
    )
    out = tmp_path / "recordings"
    finished = await run_cli(
        "--config", str(config), "--agent-cmd", agent.cmd, "--duration", str(duration_s),
        "--out", str(out), *args,
        limit_s=scaled(duration_s + 150),
        env=agent.env,
    )  # fmt: skip
    runs = sorted(p for p in out.iterdir() if p.is_dir()) if out.is_dir() else []
    return finished, runs


def write_script(path: Path, *turns: dict[str, Any]) -> Path:
    """A caller's script file of `turns`."""
    path.write_text(json.dumps({"turns": list(turns)}), encoding="utf-8")
    return path


def report(run: Path) -> dict[str, Any]:
    """A run folder's signed report."""
    return dict(json.loads((run / "report.json").read_text()))
