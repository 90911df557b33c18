"""The verdict's threshold rules, one small function each, checked in the order of the tables.

A rule returns its failures: one line naming the direction (or agent), the figure, its value and
the limit, with the time windows in which it happened (`verify.host` decides whether a host stall
explains them). The lines are signed in every report and compared on a re-check, so their wording
and order are part of the report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from verify import quality
from verify.host import (
    LOST_STALL_MS,
    Failure,
    Window,
    gap_window,
    latency_window,
    lost_window,
    speech_window,
    turn_window,
)
from verify.thresholds import AgentThresholds, Thresholds
from verify.transcripts import words

Figures = dict[str, Any]
DirectionRule = Callable[[str, Figures, Thresholds], list[Failure]]
AgentRule = Callable[[str, Figures, AgentThresholds], list[Failure]]
MAX_TURNS_NAMED = 20  # unanswered turns named in one failure line


def direction_label(d: Figures) -> str:
    """How failures and disturbances name a direction of the report: `customer->support`."""
    return f"{d['from']}->{d['to']}"


def _fmt(value: float) -> str:
    return f"{value:g}"


def _never_host(line: str) -> Failure:
    return Failure(line, host_may_explain=False)


def missing_file(name: str) -> str:
    """An evidence file is not in the run folder (a verdict line, and a re-check's reason)."""
    return f"evidence file {name} is missing"


def unexpected_file(name: str) -> str:
    """A file of the run folder is not evidence (a verdict line, and a re-check's reason)."""
    return f"unexpected file {name} in the run folder"


def run_status(figures: Figures) -> list[Failure]:
    """The run did not complete."""
    if figures["status"] != "complete":
        reason = figures.get("reason") or "no reason recorded"
        return [_never_host(f"run status is {figures['status']}, expected complete: {reason}")]
    return []


def missing_files(figures: Figures) -> list[Failure]:
    """An evidence file the manifest names is not in the run folder."""
    return [_never_host(missing_file(name)) for name in figures["missing"]]


# -- per direction -------------------------------------------------------------------------------


def bursts_sent(label: str, d: Figures, thresholds: Thresholds) -> list[Failure]:
    """The sender sent no burst: nothing was measured."""
    if d["bursts_sent"] == 0:
        return [Failure(f"{label}: bursts sent 0, expected at least 1", direction=label)]
    return []


def frames_share(label: str, d: Figures, thresholds: Thresholds) -> list[Failure]:
    """Too few of the frames sent were received."""
    share, limit = d["frames_received_share"], thresholds.min_frames_received_share
    if share is None or share < limit:
        line = (
            f"{label}: frames received share {_fmt(share or 0)} ({d['frames_received']} of "
            f"{d['frames_sent']}) is below the minimum {_fmt(limit)}"
        )
        return [Failure(line, direction=label)]
    return []


def bursts_lost(label: str, d: Figures, thresholds: Thresholds) -> list[Failure]:
    """Bursts never heard or heard too late."""
    missed = d["bursts_lost"] + d["bursts_late"]
    if missed > thresholds.max_bursts_lost:
        windows = tuple(
            lost_window(b["sent_s"]) for b in d["bursts"] if b["state"] in ("lost", "late")
        )
        line = (
            f"{label}: bursts lost {d['bursts_lost']} and late {d['bursts_late']} ({missed} of "
            f"{d['bursts_sent']}) exceed the maximum {thresholds.max_bursts_lost}"
        )
        return [Failure(line, windows, direction=label)]
    return []


def packet_loss(label: str, d: Figures, thresholds: Thresholds) -> list[Failure]:
    """RTP packets lost on the wire: never the host's doing."""
    loss, limit = d["rtc"]["packet_loss_pct"], thresholds.max_packet_loss_pct
    if loss is not None and loss > limit:
        return [
            _never_host(f"{label}: packet loss {_fmt(loss)} % exceeds the maximum {_fmt(limit)} %")
        ]
    return []


def _latency(key: str, limit: float, label: str, d: Figures) -> list[Failure]:
    """The latency statistic `key` over `limit`; each burst over it is a window."""
    value = d["latency_ms"][key]
    if value is not None and value > limit:
        over = tuple(
            latency_window(b["sent_s"] + b["latency_ms"] / 1000, b["latency_ms"] - limit)
            for b in d["bursts"]
            if b["state"] == "detected" and b["latency_ms"] > limit
        )
        line = f"{label}: latency {key} {_fmt(value)} ms exceeds the maximum {_fmt(limit)} ms"
        return [Failure(line, over, direction=label)]
    return []


def latency_median(label: str, d: Figures, thresholds: Thresholds) -> list[Failure]:
    """The median mouth-to-ear latency."""
    return _latency("median", thresholds.max_latency_median_ms, label, d)


def latency_p95(label: str, d: Figures, thresholds: Thresholds) -> list[Failure]:
    """The 95th percentile of mouth-to-ear latency."""
    return _latency("p95", thresholds.max_latency_p95_ms, label, d)


def gap_max(label: str, d: Figures, thresholds: Thresholds) -> list[Failure]:
    """The longest gap; each gap over the limit is a window."""
    limit = thresholds.max_gap_ms
    if d["gap_max_ms"] > limit:
        longest = max(d["gaps"], key=lambda g: g["duration_ms"])
        windows = tuple(
            gap_window(g["start_s"], g["duration_ms"])
            for g in d["gaps"]
            if g["duration_ms"] > limit
        )
        line = (
            f"{label}: gap max {_fmt(d['gap_max_ms'])} ms (at {_fmt(longest['start_s'])} s) "
            f"exceeds the maximum {_fmt(limit)} ms"
        )
        return [Failure(line, windows, direction=label)]
    return []


def speech_quality(label: str, d: Figures, thresholds: Thresholds) -> list[Failure]:
    """The probe's MOS and pitch (`verify.quality`)."""
    return quality.failures(label, d.get("quality"), thresholds)


def snr(label: str, d: Figures, thresholds: Thresholds) -> list[Failure]:
    """The detected bursts' median signal-to-noise ratio."""
    limit = thresholds.min_snr_db
    if d["bursts_detected"] and (d["snr_db"] is None or d["snr_db"] < limit):
        line = f"{label}: SNR {_fmt(d['snr_db'] or 0)} dB is below the minimum {_fmt(limit)} dB"
        return [Failure(line, direction=label)]
    return []


DIRECTION_RULES: tuple[DirectionRule, ...] = (
    bursts_sent,
    frames_share,
    bursts_lost,
    packet_loss,
    latency_median,
    latency_p95,
    gap_max,
    speech_quality,
    snr,
)


# -- the agent under test ------------------------------------------------------------------------


def _agent_failure(line: str, windows: Iterable[Window] = ()) -> list[Failure]:
    """A conversation's failure: a stall in one of `windows` may explain it (a stall of the
    agent's own worker too); with none, nothing a host stall could explain."""
    spans = tuple(windows)
    return [Failure(line, spans, host_may_explain=bool(spans))]


def _spoken_end_s(turn: Figures) -> float:
    """When the turn's speech ended as sent (its file's end in a run made before the speech's
    bounds were recorded): what its response is measured from."""
    end = turn.get("speech_end_s")
    return float(turn["sent_end_s"] if end is None else end)


def worker_exited(name: str, conv: Figures, thresholds: AgentThresholds) -> list[Failure]:
    """The agent's worker exited on its own (a crash) before the run ended."""
    worker = conv["worker"]
    if worker is not None and worker["exited_s"] is not None:
        return _agent_failure(
            f"agent {name}: its worker exited with code {worker['exit_code']} at "
            f"{worker['exited_s']:g} s, before the run ended (see {worker['log']})"
        )
    return []


def agent_left(name: str, conv: Figures, thresholds: AgentThresholds) -> list[Failure]:
    """The agent left the room before the Customer did."""
    if conv["left_s"] is not None:
        return _agent_failure(
            f"agent {name} left the room at {conv['left_s']:g} s, before the run ended"
        )
    return []


def never_heard(name: str, conv: Figures, thresholds: AgentThresholds) -> list[Failure]:
    """No sound from the agent at all."""
    if not conv["heard"]:
        return _agent_failure(
            f"agent {name} was never heard: {conv['files']['wav']} holds no sound above "
            f"{conv['threshold_dbfs']:g} dBFS"
        )
    return []


def turns_sent(name: str, conv: Figures, thresholds: AgentThresholds) -> list[Failure]:
    """The Customer said nothing to the agent: nothing was measured."""
    if conv["turns_sent"] == 0:
        return _agent_failure(f"agent {name}: turns sent 0, expected at least 1")
    return []


def turns_unanswered(name: str, conv: Figures, thresholds: AgentThresholds) -> list[Failure]:
    """Turns with no agent audio within the answer window, named; each turn's end is a time."""
    limit = thresholds.max_turns_unanswered
    if conv["turns_unanswered"] > limit:
        missed = [t for t in conv["turns"] if t["state"] != "answered"]
        shown = ", ".join(str(t["turn"]) for t in missed[:MAX_TURNS_NAMED])
        shown += " ..." if len(missed) > MAX_TURNS_NAMED else ""
        window_s = conv["answer_window_s"]
        return _agent_failure(
            f"agent {name}: turns unanswered {conv['turns_unanswered']} of {conv['turns_sent']} "
            f"(turn {shown}: no audio within the {window_s:g} s answer window) "
            f"exceed the maximum {limit}",
            (turn_window(_spoken_end_s(t), _spoken_end_s(t) + window_s) for t in missed),
        )
    return []


def _response(key: str, limit: float, name: str, conv: Figures) -> list[Failure]:
    """The response statistic `key` over `limit`; each turn answered slower is a time."""
    value = conv["response_ms"][key]
    if value is not None and value > limit:
        slow = (
            turn_window(_spoken_end_s(t), t["answer_start_s"], t["response_ms"] - limit)
            for t in conv["turns"]
            if t["state"] == "answered" and t["response_ms"] > limit
        )
        return _agent_failure(
            f"agent {name}: response {key} {value:g} ms exceeds the maximum {limit:g} ms", slow
        )
    return []


def response_median(name: str, conv: Figures, thresholds: AgentThresholds) -> list[Failure]:
    """The median response."""
    return _response("median", thresholds.max_response_median_ms, name, conv)


def response_p95(name: str, conv: Figures, thresholds: AgentThresholds) -> list[Failure]:
    """The 95th percentile of the response."""
    return _response("p95", thresholds.max_response_p95_ms, name, conv)


def _speech_window(turn: Figures) -> Window:
    """A turn the agent misheard: its speech as sent (its file in an older run)."""
    start, end = turn.get("speech_start_s"), turn.get("speech_end_s")
    return speech_window(
        float(turn["sent_start_s"] if start is None else start),
        float(turn["sent_end_s"] if end is None else end),
    )


def word_error_rate(name: str, conv: Figures, thresholds: AgentThresholds) -> list[Failure]:
    """The mean word error rate of the agent's transcripts; the worst turn is named."""
    summary, limit = conv.get("transcripts") or {}, thresholds.max_wer
    mean = summary.get("wer_mean")
    if mean is None or mean <= limit:
        return []
    scored = [t for t in conv["turns"] if t.get("wer") is not None]
    worst = max(scored, key=lambda t: t["wer"])
    return _agent_failure(
        f"agent {name}: word error rate mean {mean:g} over {len(scored)} turns exceeds the "
        f"maximum {limit:g} (worst turn {worst['turn']}, {worst['wer']:g}: understood "
        f"{worst['understood']!r} for {worst['text']!r})",
        (_speech_window(t) for t in scored if t["wer"] > limit),
    )


def first_words_lost(name: str, conv: Figures, thresholds: AgentThresholds) -> list[Failure]:
    """Turns whose leading words the agent's transcript lacks, each named with the words."""
    limit = thresholds.max_first_words_lost
    lost = [t for t in conv["turns"] if (t.get("first_words_lost") or 0) > limit]
    if not lost:
        return []
    named = []
    for t in lost[:MAX_TURNS_NAMED]:
        n = t["first_words_lost"]
        first = " ".join(words(t["text"] or "")[:n])
        named.append(
            f"turn {t['turn']}: the agent's transcript lacks the first {n} "
            f"word{'s' if n != 1 else ''} ({first!r}; understood {t['understood']!r})"
        )
    more = " ..." if len(lost) > MAX_TURNS_NAMED else ""
    return _agent_failure(
        f"agent {name}: {'; '.join(named)}{more}; expected at most {limit} lost",
        (_speech_window(t) for t in lost),
    )


def barge_in_talked_on(name: str, conv: Figures, thresholds: AgentThresholds) -> list[Failure]:
    """A barge-in the agent did not stop for: its audio lasted to the end of the Customer's
    speech; one failure per turn. Only a stall as long as its talking beyond the stop limit
    could explain it."""
    limit = thresholds.max_barge_in_stop_ms
    failures: list[Failure] = []
    for t in conv["turns"]:
        if t.get("barge_in") == "talked_on":
            stop, start = t["barge_in_stop_ms"], t["speech_start_s"]
            speech_ms = 1000 * (_spoken_end_s(t) - start)
            failures += _agent_failure(
                f"agent {name}: turn {t['turn']}: the agent did not stop when the Customer "
                f"interrupted: it kept talking {stop:g} ms, past the end of the Customer's "
                f"{speech_ms:.0f} ms of speech",
                [turn_window(start, start + stop / 1000, max(stop - limit, LOST_STALL_MS))],
            )
    return failures


def barge_in_stop(name: str, conv: Figures, thresholds: AgentThresholds) -> list[Failure]:
    """A barge-in the agent stopped for too slowly; one failure per turn."""
    limit = thresholds.max_barge_in_stop_ms
    failures: list[Failure] = []
    for t in conv["turns"]:
        stop = t.get("barge_in_stop_ms")
        if t.get("barge_in") == "stopped" and stop > limit:
            failures += _agent_failure(
                f"agent {name}: turn {t['turn']}: the agent kept talking {stop:g} ms after the "
                f"Customer interrupted, above the maximum {limit:g} ms",
                [turn_window(t["speech_start_s"], t["speech_start_s"] + stop / 1000, stop - limit)],
            )
    return failures


def talk_over(name: str, conv: Figures, thresholds: AgentThresholds) -> list[Failure]:
    """The agent's audio heard while the Customer spoke (barge-ins aside); one failure per turn."""
    limit = thresholds.max_talk_over_ms
    failures: list[Failure] = []
    for t in conv["turns"]:
        over = t.get("talk_over_ms")
        if over is not None and over > limit:
            start = t["speech_start_s"] if t["speech_start_s"] is not None else t["sent_start_s"]
            failures += _agent_failure(
                f"agent {name}: turn {t['turn']}: the agent talked over the Customer for "
                f"{over:g} ms, above the maximum {limit:g} ms",
                [turn_window(start, _spoken_end_s(t), over - limit)],
            )
    return failures


AGENT_RULES: tuple[AgentRule, ...] = (
    worker_exited,
    agent_left,
    never_heard,
    turns_sent,
    turns_unanswered,
    response_median,
    response_p95,
    word_error_rate,
    first_words_lost,
    barge_in_talked_on,
    barge_in_stop,
    talk_over,
)


def failures_of(figures: Figures, thresholds: Thresholds, extra: list[str]) -> list[Failure]:
    """Every failed threshold of a run's figures, in the tables' order; `extra`: more lines that
    are never the host's doing (unexpected files)."""
    failures = run_status(figures) + missing_files(figures) + [_never_host(x) for x in extra]
    for d in figures["directions"]:
        label = direction_label(d)
        for rule in DIRECTION_RULES:
            failures += rule(label, d, thresholds)
    conv = figures.get("conversation")
    if conv is not None:
        limits = AgentThresholds.from_dict(conv["thresholds"])
        for agent_rule in AGENT_RULES:
            failures += agent_rule(conv["agent"], conv, limits)
    return failures
