"""What the agent understood of each turn, and what it answered, from the room's transcriptions.

An agent built on livekit-agents publishes its STT's transcript of the caller and the text of
its own speech as text streams, which the Customer recorded (`customer.transcripts.jsonl`,
docs/evidence.md). Per turn, on the run's clock:

- `understood`: the agent's transcript of the turn: the streams transcribing the Customer's
  track that arrived after the turn's speech started and by the next turn's start, one text per
  segment (its final stream, else its last), joined by spaces;
- `answer_text`: the agent's own transcript of its answer: the streams transcribing its track
  that opened in the same span, one text per segment, joined;
- `wer`: the word error rate of `understood` against the turn's `text` (jiwer; both lowercased,
  words as runs of letters, digits and apostrophes); null when the turn has no text;
- `first_words_lost`: how many of the text's leading words come before the first one the
  transcript got right (all of them when it got none): words lost as the agent's speech
  detection or STT started late.

All four are null when the agent published no transcript of that kind in the whole run (an
agent that does not publish transcriptions, or a run made before they were recorded); a turn
it did not transcribe while it transcribed others has an empty `understood`.
"""

from __future__ import annotations

import re
import statistics
from typing import Any

import jiwer
import numpy as np
import numpy.typing as npt

from echoproof.contract import TRANSCRIPT_TRACKS
from verify.evidence import Transcript
from verify.timing import rounded

CUSTOMER_TRACK, AGENT_TRACK = TRANSCRIPT_TRACKS
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def words(text: str) -> list[str]:
    """The words of `text` as WER counts them: lowercased runs of letters and digits (with
    inner apostrophes: "i'd"); punctuation and spacing do not count."""
    return _WORD.findall(text.lower())


def word_errors(text: str, understood: str) -> tuple[float | None, int | None]:
    """The word error rate of `understood` against `text`, and how many of the text's leading
    words were lost; None for both when `text` has no words."""
    reference, hypothesis = words(text), words(understood)
    if not reference:
        return None, None
    if not hypothesis:  # every word deleted (jiwer wants a hypothesis to align)
        return 1.0, len(reference)
    out = jiwer.process_words(" ".join(reference), " ".join(hypothesis))
    first_right = next((a.ref_start_idx for a in out.alignments[0] if a.type == "equal"), None)
    return float(out.wer), len(reference) if first_right is None else int(first_right)


def _segments_text(streams: list[Transcript]) -> str:
    """One text per segment (its final stream's, else its last), in the order they began."""
    chosen: dict[str | None, Transcript] = {}
    for s in streams:
        held = chosen.get(s.segment)
        if held is None or not held.final or s.final:
            chosen[s.segment] = s
    return " ".join(t.text.strip() for t in chosen.values() if t.text.strip())


def turn_transcripts(
    transcripts: list[Transcript] | None,
    texts: list[str] | None,
    speech_start_ns: npt.NDArray[np.float64],
) -> list[dict[str, Any]]:
    """Per turn (`speech_start_ns`: when each turn's speech started as sent): `understood`,
    `wer`, `first_words_lost`, `answer_text` (see the module docstring)."""
    streams = transcripts or []
    heard = [s for s in streams if s.track == CUSTOMER_TRACK]
    spoken = [s for s in streams if s.track == AGENT_TRACK]
    entries = []
    for k, start in enumerate(speech_start_ns):
        stop = speech_start_ns[k + 1] if k + 1 < len(speech_start_ns) else np.inf
        understood = _segments_text([s for s in heard if start < s.t_ns <= stop]) if heard else None
        answer = _segments_text([s for s in spoken if start < s.opened_ns <= stop])
        text = texts[k] if texts is not None else ""
        wer, lost = (None, None) if understood is None else word_errors(text, understood)
        entries.append(
            {
                "understood": understood,
                "wer": None if wer is None else rounded(wer, 4),
                "first_words_lost": lost,
                "answer_text": answer if spoken else None,
            }
        )
    return entries


def summary(transcripts: list[Transcript] | None, turns: list[dict[str, Any]]) -> dict[str, Any]:
    """The run's `transcripts` block: streams received by whose track, the WER's mean and max
    over the turns with text, and the turns whose first words were lost."""
    streams = transcripts or []
    rates = [t["wer"] for t in turns if t.get("wer") is not None]
    return {
        "available": transcripts is not None,
        "streams": len(streams),
        "customer_streams": sum(s.track == CUSTOMER_TRACK for s in streams),
        "agent_streams": sum(s.track == AGENT_TRACK for s in streams),
        "turns_scored": len(rates),
        "wer_mean": rounded(statistics.fmean(rates), 4) if rates else None,
        "wer_max": max(rates) if rates else None,
        "first_words_lost_turns": [
            t["turn"] for t in turns if (t.get("first_words_lost") or 0) > 0
        ],
    }
