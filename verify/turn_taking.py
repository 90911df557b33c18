"""How the agent under test takes turns: whether it stops when the Customer barges in, and whether
it talks over the Customer (docs/measurements.md, "Barge-in and talk-over").

Both compare the agent's sounds as the Customer heard them (`dsp.find_voice` on what it heard,
timed by the arrivals) with the Customer's speech as it was sent, on the run's one clock:

- a barge-in turn (the script's `barge_in_after_ms`; the turns file says when the Customer heard
  the answer it barged into) is in one of these states: `missed` (no answer was heard within the
  window, so the turn was said after it), `over` (the agent's audio had ended before the turn's
  speech began: nothing to interrupt), `stopped` (the agent's audio ended while the Customer was
  still speaking) or `talked_on` (it lasted to the end of the Customer's speech, or beyond).
  The agent's audio *playing* when the speech began runs on across pauses shorter than
  `STOP_PAUSE_MS` (between words); `barge_in_stop_ms` is from the speech's onset as sent to that
  audio's end as heard, and `barge_in_answered` whether the turn was answered after it;
- talk-over (every other turn): the agent's audio heard between the onset and the end of the
  turn's speech as sent, summed, in ms.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import numpy.typing as npt

from verify.evidence import HowSaid
from verify.timing import NS_PER_MS, latency_stats, rounded

FloatArray = npt.NDArray[np.float64]
STOP_PAUSE_MS = 300.0  # a pause this long ends the agent's audio: longer than between words
INTERRUPTED = ("stopped", "talked_on")  # barge-in states in which the Customer cut in


@dataclasses.dataclass(frozen=True)
class Sounds:
    """The agent's sounds as heard: onset and offset of each (ns on the one clock), in order."""

    on_ns: FloatArray
    off_ns: FloatArray


def turn_figures(
    how: HowSaid, speech_ns: tuple[float, float], sounds: Sounds, answered: bool
) -> dict[str, Any]:
    """A turn's barge-in and talk-over figures: `speech_ns` is its speech as sent."""
    state, stop_ms = _barge_in(how, speech_ns, sounds)
    cut_in = state in INTERRUPTED
    return {
        "barge_in_after_ms": how.barge_in_after_ms,
        "barge_in": state,
        "barge_in_stop_ms": None if stop_ms is None else rounded(stop_ms, 4),
        "barge_in_answered": answered if cut_in else None,
        "talk_over_ms": None if cut_in else rounded(_overlap_ms(speech_ns, sounds), 4),
    }


def _barge_in(
    how: HowSaid, speech_ns: tuple[float, float], sounds: Sounds
) -> tuple[str | None, float | None]:
    """The barge-in's state and, when the Customer cut in, how long the agent went on."""
    if how.barge_in_after_ms is None:
        return None, None
    if how.barge_in_heard_ns is None:
        return "missed", None
    start, end = speech_ns
    on, off = sounds.on_ns, sounds.off_ns
    pause_ns = STOP_PAUSE_MS * NS_PER_MS
    k = int(np.searchsorted(on, start, side="right")) - 1  # the last sound begun by then
    if k < 0 or off[k] < start - pause_ns:
        return "over", None
    while k + 1 < on.size and on[k + 1] - off[k] < pause_ns:
        k += 1
    if off[k] <= start:
        return "over", None
    stop_ms = float(off[k] - start) / NS_PER_MS
    return ("talked_on" if off[k] >= end else "stopped"), stop_ms


def _overlap_ms(speech_ns: tuple[float, float], sounds: Sounds) -> float:
    """The agent's audio heard between `speech_ns`' bounds, in ms."""
    start, end = speech_ns
    overlap = np.clip(np.minimum(sounds.off_ns, end) - np.maximum(sounds.on_ns, start), 0, None)
    return float(overlap.sum()) / NS_PER_MS


def summary(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The run's barge-ins and talk-over, from its turns' figures."""
    cut_in = [e for e in entries if e["barge_in"] in INTERRUPTED]
    stopped = [e["barge_in_stop_ms"] for e in entries if e["barge_in"] == "stopped"]
    talk_over = [e for e in entries if e["talk_over_ms"]]
    return {
        "barge_ins": len(cut_in),
        "barge_ins_answered": sum(1 for e in cut_in if e["barge_in_answered"]),
        "barge_ins_talked_on": [e["turn"] for e in entries if e["barge_in"] == "talked_on"],
        "barge_ins_missed": [e["turn"] for e in entries if e["barge_in"] in ("missed", "over")],
        "barge_in_stop_ms": latency_stats(np.array(stopped, dtype=np.float64)),
        "talk_over_ms": rounded(sum(e["talk_over_ms"] for e in talk_over), 4),
        "talk_over_turns": [e["turn"] for e in talk_over],
    }
