"""The playable evidence of `report.html`: an audio player per recording on the run's own WAV
(a relative link: nothing is copied), its waveform and marked regions (`verify.waveform`), and,
for an agent under test, the turns as a table whose rows play their part of the recording.

`report.js` (inlined by `verify.page`) makes them play; this module writes their HTML.
"""

from __future__ import annotations

import html
import json
from typing import Any
from urllib.parse import quote

from verify.page import number
from verify.waveform import Region, Stream

KINDS = {
    "burst": "burst heard",
    "lost": "burst lost or late",
    "glitch": "glitch in a burst",
    "gap": "gap",
    "turn": "turn said",
    "answer": "answer heard",
    "barge-in": "barge-in, to the agent's stop",
    "stall": "host stall",
    "freeze": "host froze",
}


def player_id(index: int) -> str:
    """The id of the page's `index`th audio element."""
    return f"audio-{index}"


def players(streams: list[Stream]) -> str:
    """Every recording's player, in order."""
    return "".join(_player(i, s) for i, s in enumerate(streams))


def _player(index: int, s: Stream) -> str:
    esc = html.escape
    kinds = sorted({r.kind for r in s.regions}, key=list(KINDS).index)
    legend = "".join(f'<span><i class="region {k}"></i>{esc(KINDS[k])}</span>' for k in kinds)
    axis = "the run's clock" if s.run_clock else "the file's own time"
    data = json.dumps(s.as_json(), separators=(",", ":")).replace("</", "<\\/")
    return (
        f'<div class="player" data-wav="{esc(s.wav)}" data-duration="{s.duration_s:g}">'
        f'<h3>{esc(s.title)} <small>(<a href="{esc(quote(s.wav))}">{esc(s.wav)}</a>, '
        f"{s.duration_s:.2f} s; waveform over {axis})</small></h3>"
        f'<audio id="{player_id(index)}" controls preload="metadata" '
        f'src="{esc(quote(s.wav))}"></audio>'
        f'<div class="track"><canvas aria-label="waveform of {esc(s.wav)}"></canvas>'
        f'<div class="head"></div></div><div class="regions"></div>'
        f'<div class="legend">{legend}</div>'
        f'<script type="application/json" class="wave">{data}</script></div>'
    )


def turns(report: dict[str, Any], streams: list[Stream]) -> str:
    """An agent run's turns: said, understood, answered, response; each row plays its part of
    what the Customer heard (from the turn's speech to the end of its answer)."""
    conv = report.get("conversation")
    heard = [i for i, s in enumerate(streams) if any(r.kind == "turn" for r in s.regions)]
    if conv is None or not conv["turns"] or not heard:
        return ""
    index = heard[0]
    regions: dict[tuple[str, int | None], Region] = {
        (r.kind, r.ref): r for r in streams[index].regions
    }
    esc = html.escape
    rows = []
    for t in conv["turns"]:
        said = regions.get(("turn", t["turn"]))
        answer = regions.get(("answer", t["turn"]))
        response = (
            f"{number(t['response_ms'], 'ms')} ms" if t["state"] == "answered" else t["state"]
        )
        if t.get("barge_in"):
            response += f"; barge-in {t['barge_in']}"
            if t.get("barge_in_stop_ms") is not None:
                response += f", stopped after {number(t['barge_in_stop_ms'], 'ms')} ms"
        play = ""
        if said is not None:
            until = "" if answer is None else f"{answer.stop_s:g}"
            play = (
                f'<button type="button" class="play" data-play="{player_id(index)}" '
                f'data-seek="{said.seek_s:g}" data-until="{until}" '
                f'title="play this turn and its answer">▶ {said.start_s:.2f} s</button>'
            )
        rows.append(
            f'<tr data-turn="{t["turn"]}"><td>{t["turn"]}</td><td>{play}</td>'
            f"<td>{esc(t.get('text') or t['source'])}</td>"
            f"<td>{esc(_text(t.get('understood')))}</td>"
            f"<td>{esc(_text(t.get('answer_text')))}</td><td>{esc(response)}</td></tr>"
        )
    return (
        '<h3>The turns</h3><table class="turns"><tr><th>turn</th><th>play</th><th>said</th>'
        "<th>understood</th><th>answered</th><th>response</th></tr>" + "".join(rows) + "</table>"
    )


def _text(value: str | None) -> str:
    return "(no transcript)" if value is None else value
