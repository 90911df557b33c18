"""The conversation with an agent under test in `report.html`: a timeline plot and a table.

The timeline puts, on the run's clock, each turn as the Customer sent it (its speech dark, the
file's silence around it light), the agent's audio as the Customer heard it, the agent's join,
and each turn's response (end of its speech to the onset of the answer); unanswered turns are
marked. Derived from the report, not evidence.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from verify.waveform import said

IMAGE = "conversation.png"


def draw(report: dict[str, Any], path: Path) -> None:
    """The conversation timeline, as a PNG at `path`."""
    conv = report["conversation"]
    fig = Figure(figsize=(12, 3.6), layout="constrained")
    ax = fig.add_subplot()
    for t in conv["turns"]:
        color = "tab:blue" if t["state"] == "answered" else "tab:red"
        ax.broken_barh(
            [(t["sent_start_s"], t["sent_end_s"] - t["sent_start_s"])], (1.6, 0.6), color=color,
            alpha=0.35,
        )  # fmt: skip
        start, end = said(t)
        ax.broken_barh([(start, end - start)], (1.6, 0.6), color=color)
        if t["state"] == "answered":
            ax.annotate(
                f"{t['response_ms']:.0f} ms", xy=(t["answer_start_s"], 1.05),
                xytext=(end, 1.3), fontsize="x-small",
                arrowprops={"arrowstyle": "->", "linewidth": 0.6},
            )  # fmt: skip
        else:
            ax.text(end, 1.3, "unanswered", color="tab:red", fontsize="x-small")
    ax.broken_barh(
        [(s["onset_s"], s["offset_s"] - s["onset_s"]) for s in conv["segments"]], (0.4, 0.6),
        color="tab:green",
    )  # fmt: skip
    if conv["joined_s"] is not None:
        ax.axvline(conv["joined_s"], color="tab:gray", linestyle="--", linewidth=0.8)
        ax.text(conv["joined_s"], 2.35, " agent joined", fontsize="x-small", color="tab:gray")
    ax.set_yticks([0.7, 1.9], ["agent, as heard", "Customer, as sent"])
    ax.set_ylim(0, 2.6)
    ax.set_xlabel("run time (s, from the manifest's clock)")
    ax.set_title(f"Conversation with agent {conv['agent']}: turns sent, answers heard, responses")
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=100)


def _turn_taking(conv: dict[str, Any]) -> list[tuple[str, Any]]:
    """Barge-ins and talk-over (a report signed before they were measured has none)."""
    if "barge_ins" not in conv:
        return []
    b = conv["barge_in_stop_ms"]
    return [
        ("barge-ins: cut in / answered after",
         f"{conv['barge_ins']} / {conv['barge_ins_answered']}"),
        ("barge-in stop min / median / max (ms)", f"{b['min']} / {b['median']} / {b['max']}"),
        ("barge-ins the agent talked on through",
         ", ".join(map(str, conv["barge_ins_talked_on"])) or "none"),
        ("talk-over (ms, turns)",
         f"{conv['talk_over_ms']} ({', '.join(map(str, conv['talk_over_turns'])) or 'none'})"),
    ]  # fmt: skip


def _first_audio(conv: dict[str, Any]) -> list[tuple[str, Any]]:
    """Each side's publication to its first audio the other could hear (a report signed before
    they were measured has none)."""
    first = conv.get("first_audio")
    if first is None:
        return []
    customer, agent = first["customer"], first["agent"]
    return [
        ("Customer: published to first speech the agent could hear (ms)",
         customer["first_audio_ms"]),
        ("Customer: speech sent before the agent subscribed (ms)", customer["lost_ms"]),
        ("agent: published to first audio heard (ms)", agent["first_audio_ms"]),
    ]  # fmt: skip


def table(report: dict[str, Any]) -> str:
    """The conversation's figures as an HTML section."""
    conv = report["conversation"]
    r = conv["response_ms"]
    rows = [
        ("agent", f"{conv['agent']} ({conv['identity']}, {conv['kind']})"),
        ("dispatch: CreateDispatch to the agent's join (ms)", conv.get("dispatch_ms")),
        ("greeting: join to first audio, before the first turn (ms)", conv["greeting_ms"]),
        ("first audio: CreateDispatch to first audio heard (ms)", conv.get("first_audio_ms")),
        *_first_audio(conv),
        ("turns sent / answered / unanswered",
         f"{conv['turns_sent']} / {conv['turns_answered']} / {conv['turns_unanswered']}"),
        ("unanswered turns", ", ".join(map(str, conv["unanswered"])) or "none"),
        ("response min / median / p95 / max (ms)",
         f"{r['min']} / {r['median']} / {r['p95']} / {r['max']}"),
        ("answer window (s)", conv["answer_window_s"]),
        ("agent talk time (s)", conv["talk_time_s"]),
        ("gaps inside answers (count, longest ms)", f"{conv['gaps']}, {conv['gap_max_ms']}"),
        ("glitches inside its speech", conv["glitches"]),
        *_turn_taking(conv),
        ("voice threshold / noise floor (dBFS)",
         f"{conv['threshold_dbfs']} / {conv['noise_floor_dbfs']}"),
    ]  # fmt: skip
    words = conv.get("transcripts")
    if words is not None and words["available"]:
        rows.append(
            ("transcriptions received (caller's / agent's)",
             f"{words['customer_streams']} / {words['agent_streams']}")
        )  # fmt: skip
        rows.append(("word error rate mean / max", f"{words['wer_mean']} / {words['wer_max']}"))
        lost = ", ".join(map(str, words["first_words_lost_turns"])) or "none"
        rows.append(("turns whose first words were lost", lost))
        for t in conv["turns"]:
            if t.get("understood") is not None:
                heard = f"understood {t['understood']!r}"
                if t.get("text"):
                    heard += f" for {t['text']!r} (WER {t['wer']})"
                rows.append((f"turn {t['turn']}", f"{heard}; answered {t['answer_text']!r}"))
    worker = conv["worker"]
    if worker is not None:
        ended = (
            f"exited on its own with code {worker['exit_code']} at {worker['exited_s']} s"
            if worker["exited_s"] is not None
            else f"stopped by the run ({worker['stopped_by']}), exit code {worker['exit_code']}"
        )
        rows.append(("worker", f"registered at {worker['registered_s']} s; {ended}"))
        if (sched := worker.get("scheduling")) is not None:
            policies = ", ".join(sched["policies"])
            rows.append(("worker scheduling", f"{policies} ({sched['processes']} processes)"))
    body = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in rows
    )
    return f"<h3>Conversation with the agent under test</h3><table>{body}</table>"
