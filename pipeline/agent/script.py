"""The caller's script (`--script FILE`): what the Customer says, turn by turn, and how.

    {"turns": [
      {"text": "Hi, I'd like to check my order."},
      {"text": "It's order one two three.", "say": "order.wav",
       "noise": {"kind": "pink", "snr_db": 10}},
      {"text": "Actually, cancel it.", "barge_in_after_ms": 800, "phone": true}
    ]}

Per turn:

- `text` (required): the words. Without `say` they are spoken by eSpeak NG at config time
  (`pipeline.agent.espeak`); with it they are what the file says (the report carries them).
- `say`: an audio file of those words (WAV, FLAC, OGG at any rate), relative to the script file.
- `barge_in_after_ms`: say this turn while the agent is still answering the one before, this long
  after its answer was heard to begin (the first turn: after the greeting began). When no answer
  begins within the answer window, the turn is said then, and the turns file records that no
  barge-in happened.
- `noise`: `{"kind": "pink" | "babble", "snr_db": N}`: background noise mixed into the turn at N dB
  below its speech (`dsp.noise`; seeded by the turn's place in the script, so a script always
  sounds the same).
- `phone`: true: the turn (with its noise) passes through an 8 kHz G.711 mu-law phone line
  (`dsp.phone`) before it is sent.

The same in YAML, in a file named `.yaml` or `.yml`:

    turns:
      - text: Hi, I'd like to check my order.
      - text: Actually, cancel it.
        barge_in_after_ms: 800
        phone: true

Every mistake is a ConfigError naming the field, what was found and what was expected.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from dsp.noise import KINDS
from pipeline.config import document
from pipeline.config.fields import boolean, is_number, kind, obj, string, unknown
from pipeline.errors import ConfigError

TURN_FIELDS = ("text", "say", "barge_in_after_ms", "noise", "phone")
NOISE_FIELDS = ("kind", "snr_db")
MAX_TURNS = 1000
MAX_BARGE_IN_MS = 60_000.0
SNR_RANGE_DB = (-20.0, 60.0)


@dataclasses.dataclass(frozen=True)
class Noise:
    """Background noise of one turn: its kind (`dsp.noise.KINDS`), its level and its seed."""

    kind: str
    snr_db: float
    seed: int


@dataclasses.dataclass(frozen=True)
class Line:
    """One turn of the script, validated; `say` is resolved against the script's folder."""

    text: str
    say: Path | None = None
    barge_in_after_ms: float | None = None
    noise: Noise | None = None
    phone: bool = False


def load(path: Path) -> list[Line]:
    """The script at `path` (YAML when named .yaml or .yml, else JSON); ConfigError says what is
    wrong with it."""
    return parse(document.load(path, "script file", "--script"), str(path), path.parent)


def parse(data: Any, source: str, folder: Path) -> list[Line]:
    """A decoded script (`source` names it in messages; `say` files are under `folder`)."""
    if not isinstance(data, dict):
        raise ConfigError(
            f"script file {source} holds {kind(data)}; expected an object with a 'turns' list."
        )
    block = data
    unknown(block, ("turns",), "", source)
    turns = block.get("turns")
    if not isinstance(turns, list) or not 1 <= len(turns) <= MAX_TURNS:
        raise ConfigError(
            f"{source}: 'turns' is {kind(turns)}; expected a list of 1 to {MAX_TURNS} turns, "
            'e.g. [{"text": "Hello"}].'
        )
    return [_line(turn, i, source, folder) for i, turn in enumerate(turns)]


def _line(value: Any, i: int, source: str, folder: Path) -> Line:
    """Turn `i` of the script."""
    where = f"turns[{i}]"
    turn = obj(value, where, source)
    unknown(turn, TURN_FIELDS, f"{where}.", source)
    if "text" not in turn:
        raise ConfigError(f"{source}: '{where}' has no 'text'; expected the words it says.")
    text = string(turn["text"], f"{where}.text", source)
    if not text.strip():
        raise ConfigError(f"{source}: '{where}.text' is blank; expected the words it says.")
    say = turn.get("say")
    path = None if say is None else folder / string(say, f"{where}.say", source)
    after = turn.get("barge_in_after_ms")
    if after is not None and (not is_number(after) or not 0 <= after <= MAX_BARGE_IN_MS):
        raise ConfigError(
            f"{source}: '{where}.barge_in_after_ms' is {kind(after)}; expected milliseconds "
            f"in [0, {MAX_BARGE_IN_MS:g}]."
        )
    noise = turn.get("noise")
    return Line(
        text=text,
        say=path,
        barge_in_after_ms=None if after is None else float(after),
        noise=None if noise is None else _noise(noise, i, source),
        phone=boolean(turn.get("phone", False), f"{where}.phone", source),
    )


def _noise(value: Any, i: int, source: str) -> Noise:
    """Turn `i`'s `noise` block."""
    where = f"turns[{i}].noise"
    block = obj(value, where, source)
    unknown(block, NOISE_FIELDS, f"{where}.", source)
    name = block.get("kind")
    if name not in KINDS:
        raise ConfigError(
            f"{source}: '{where}.kind' is {kind(name)}; expected "
            + " or ".join(repr(k) for k in KINDS)
            + "."
        )
    snr: Any = block.get("snr_db")
    low, high = SNR_RANGE_DB
    if not is_number(snr) or not low <= snr <= high:
        raise ConfigError(
            f"{source}: '{where}.snr_db' is {kind(snr)}; expected decibels in [{low:g}, {high:g}]."
        )
    return Noise(str(name), float(snr), seed=i)
