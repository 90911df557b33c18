"""The `agent` block: which agent under test a run dispatches, how its worker starts, what is said
to it (`pipeline.agent` runs it). `config.json`'s optional block, or `--agent NAME`,
`--agent-cmd CMD`, `--say FILE ...`:

- `name` (required): the agent name its worker registered (`WorkerOptions(agent_name=...)`); the
  run dispatches it into the room through `AgentDispatchService`; our own Support speaker stays out.
- `cmd` (null): a shell command that starts the worker (`python agent.py dev`); the run starts it
  with the run's LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET, waits for it to register,
  stops it at the end (SIGINT, then SIGTERM, then SIGKILL) and keeps its output in the run
  folder. Null: a worker must be registered already (LiveKit Cloud, or one the user started).
- `say` ([]): audio files (WAV, FLAC, OGG; any rate, any channels) the Customer says in turn, again
  from the first once all were said; empty: it says its tone burst.
- `script` (null): a caller's script instead (`--script FILE`, JSON: each turn's words, spoken by
  eSpeak NG or from a file, with barge-in, background noise and a phone line;
  `pipeline.agent.script`); not with `say`.
- `answer_window_s` (5): after each utterance the Customer listens this long before the next (and
  this long before the first: the greeting); an answer must begin within it.
- `dispatch_timeout_s` (30): bound on the agent joining the room after the dispatch.
- `worker_start_timeout_s` (120): bound on the worker registering after `cmd` started it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from pipeline.config.fields import is_number, unknown
from pipeline.errors import ConfigError

DEFAULTS: dict[str, Any] = {
    "name": None,
    "cmd": None,
    "say": [],
    "script": None,
    "answer_window_s": 5.0,
    "dispatch_timeout_s": 30.0,
    "worker_start_timeout_s": 120.0,
}


@dataclasses.dataclass(frozen=True)
class AgentSpec:
    """The agent under test, validated."""

    name: str
    cmd: str | None = None
    say: tuple[Path, ...] = ()
    script: Path | None = None
    answer_window_s: float = DEFAULTS["answer_window_s"]
    dispatch_timeout_s: float = DEFAULTS["dispatch_timeout_s"]
    worker_start_timeout_s: float = DEFAULTS["worker_start_timeout_s"]

    def __post_init__(self) -> None:
        def need(ok: bool, name: str, value: object, expected: str) -> None:
            if not ok:
                raise ConfigError(f"'agent.{name}' is {value!r}; expected {expected}.")

        need(_valid_name(self.name), "name", self.name, "a non-empty agent name")
        need(self.cmd is None or bool(self.cmd.strip()), "cmd", self.cmd, "a shell command")
        if self.say and self.script is not None:
            raise ConfigError(
                f"'agent.say' and 'agent.script' are both given ({len(self.say)} files and "
                f"{self.script}); expected one of them: a script's turns name their own files."
            )
        need(
            0.2 <= self.answer_window_s <= 600,
            "answer_window_s",
            self.answer_window_s,
            "seconds in [0.2, 600]",
        )
        for name in ("dispatch_timeout_s", "worker_start_timeout_s"):
            value = getattr(self, name)
            need(0 < value <= 3600, name, value, "seconds in (0, 3600]")

    def public(self) -> dict[str, Any]:
        """The manifest's form (the command as given: secrets go in its environment, not here)."""
        return {
            "name": self.name,
            "cmd": self.cmd,
            "say": [str(p) for p in self.say],
            "script": None if self.script is None else str(self.script),
            "answer_window_s": self.answer_window_s,
            "dispatch_timeout_s": self.dispatch_timeout_s,
            "worker_start_timeout_s": self.worker_start_timeout_s,
        }


def _valid_name(name: Any) -> bool:
    return isinstance(name, str) and bool(name.strip()) and name == name.strip()


def parse(value: Any, source: str) -> AgentSpec:
    """The `agent` block of `source`; ConfigError names the first bad field."""
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: 'agent' is not an object; expected {{\"name\": ...}}.")
    unknown(value, DEFAULTS, "agent.", source)
    data = {**DEFAULTS, **value}
    if not _valid_name(data["name"]):
        raise ConfigError(
            f"{source}: 'agent.name' is {data['name']!r}; expected the agent name its worker "
            'registered, e.g. "reply-agent".'
        )
    cmd = data["cmd"]
    if cmd is not None and not isinstance(cmd, str):
        raise ConfigError(f"{source}: 'agent.cmd' is {cmd!r}; expected a shell command or null.")
    say = data["say"]
    if not isinstance(say, list) or not all(isinstance(p, str) and p for p in say):
        raise ConfigError(f"{source}: 'agent.say' is {say!r}; expected a list of file paths.")
    script = data["script"]
    if script is not None and (not isinstance(script, str) or not script):
        raise ConfigError(f"{source}: 'agent.script' is {script!r}; expected a file path or null.")
    numbers = {}
    for name in ("answer_window_s", "dispatch_timeout_s", "worker_start_timeout_s"):
        v = data[name]
        if not is_number(v):
            raise ConfigError(f"{source}: 'agent.{name}' is {v!r}; expected a number of seconds.")
        numbers[name] = float(v)
    try:
        return AgentSpec(
            data["name"],
            cmd,
            tuple(Path(p) for p in say),
            None if script is None else Path(script),
            **numbers,
        )
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
