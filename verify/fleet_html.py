"""fleet.html: a fleet's verdict in the run pages' style (`verify.page`), the distribution of each
headline figure across its conversations (a histogram, drawn as inline SVG: no file, no
network), and the conversations worst first, each linking to its run's page. From fleet.json's
content alone (`verify.fleet.build`)."""

from __future__ import annotations

import html
from typing import Any

import numpy as np

from verify import page

# fleet.json's per-conversation figures (`verify.fleet._HEADLINES`) as the page names them
LABELS = {
    "latency_median_ms": ("mouth-to-ear median, worse direction", "ms"),
    "latency_p95_ms": ("mouth-to-ear p95, worse direction", "ms"),
    "packet_loss_pct": ("packet loss, worse direction", "%"),
    "gap_max_ms": ("longest gap", "ms"),
    "mos_min": ("lowest MOS", ""),
    "greeting_ms": ("greeting", "ms"),
    "dispatch_ms": ("dispatch to the agent's join", "ms"),
    "first_audio_ms": ("dispatch to first audio heard", "ms"),
    "first_audio_s": ("first audio heard, on the run's clock", "s"),
    "response_p95_ms": ("response p95", "ms"),
    "barge_in_stop_max_ms": ("slowest barge-in stop", "ms"),
    "talk_over_ms": ("talk-over", "ms"),
}
COLUMNS = ("latency_p95_ms", "gap_max_ms", "mos_min", "response_p95_ms", "barge_in_stop_max_ms")
BINS = 10
WIDTH, HEIGHT, PAD = 280, 130, 22  # a histogram's SVG, in px


def render(summary: dict[str, Any]) -> str:
    """fleet.html: the verdict, the counts, each figure's histogram, the runs worst first."""
    esc = html.escape
    verdict = summary["verdict"]
    status, word = esc(verdict["status"]), esc(verdict["status"].upper())
    c = summary["counts"]
    reason = "; ".join(verdict["failures"]) or "every fleet threshold is met"
    r = summary["response_ms"]
    response = (
        f"<p>Response over {r['count']} answered turns: p50 {page.number(r['p50'])} ms, p95 "
        f"{page.number(r['p95'])} ms, p99 {page.number(r['p99'])} ms, max "
        f"{page.number(r['max'])} ms.</p>"
        if r["count"]
        else ""
    )
    histograms = "".join(
        _histogram(name, [row[name] for row in summary["runs"]])
        for name, spread in summary["figures"].items()
        if spread is not None and name in LABELS
    )
    spreads = "".join(
        f"<tr><td>{esc(LABELS.get(name, (name, ''))[0])}</td>"
        + "".join(f"<td>{_cell(spread, k)}</td>" for k in ("p50", "p95", "max", "min", "count"))
        + "</tr>"
        for name, spread in summary["figures"].items()
        if spread is not None
    )
    # a column only where some conversation has the figure: a tone fleet has no response
    columns = [k for k in COLUMNS if any(row[k] is not None for row in summary["runs"])]
    rows = "".join(
        f'<tr class="{esc(row["status"])}"><td><a href="{esc(row["report"])}">'
        f"{esc(row['run'])}</a></td><td>{esc(row['status'].upper())}</td>"
        + "".join(f"<td>{_cell(row, k)}</td>" for k in columns)
        + f'<td class="why">{esc(row["reason"] or "")}</td></tr>'
        for row in summary["runs"]
    )
    heads = "".join(f"<th>{esc(_heading(k))}</th>" for k in columns)
    body = f"""<h1>echoproof fleet {esc(summary["fleet"])}</h1>
<header id="verdict" class="banner {status}" data-status="{status}"><div class="word">{word}</div>
<div class="reason">{esc(reason)}</div>
<div class="signature">{summary["conversations"]} conversations: {c["ok"]} OK, {c["fail"]} FAIL,
{c["inconclusive"]} INCONCLUSIVE</div></header>
{response}
<h2>Across the conversations</h2>
<div class="histograms">{histograms}</div>
<h2>Conversations, worst first</h2>
<table class="runs"><tr><th>run</th><th>status</th>{heads}<th class="why">why</th></tr>
{rows}</table>
<h2>Spread of each figure</h2>
<table><tr><th>figure (each conversation's worse direction)</th><th>p50</th><th>p95 / p5</th>
<th>max</th><th>min</th><th>count</th></tr>{spreads}</table>"""
    return page.document(f"echoproof fleet {summary['fleet']}: {verdict['status'].upper()}", body)


def _histogram(name: str, values: list[Any]) -> str:
    """How many conversations fall in each of up to `BINS` equal stretches of the figure."""
    known = np.array([v for v in values if isinstance(v, int | float)], dtype=np.float64)
    label, unit = LABELS[name]
    lo, hi = float(known.min()), float(known.max())
    if hi == lo:  # one value: one bar around it
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(known, bins=min(BINS, max(int(known.size), 1)), range=(lo, hi))
    tallest = int(counts.max())
    bar = (WIDTH - 2 * PAD) / counts.size
    plot = HEIGHT - 2 * PAD
    bars = "".join(
        f'<rect x="{PAD + i * bar:.1f}" y="{PAD + plot * (1 - n / tallest):.1f}" '
        f'width="{max(bar - 1, 1):.1f}" height="{plot * n / tallest:.1f}" fill="#3b6ea5">'
        f"<title>{n} in {edges[i]:g} to {edges[i + 1]:g} {unit}</title></rect>"
        for i, n in enumerate(counts.tolist())
        if n
    )
    text = f"{html.escape(label)}" + (f" ({unit})" if unit else "")
    return (
        f'<figure data-figure="{name}"><svg width="{WIDTH}" height="{HEIGHT}" role="img" '
        f'aria-label="histogram of {text}">{bars}'
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" '
        f'stroke="#555"/><text x="{PAD}" y="{HEIGHT - 6}">{edges[0]:g}</text>'
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 6}" text-anchor="end">{edges[-1]:g}</text>'
        f'<text x="2" y="{PAD - 6}">{tallest} conversations</text></svg>'
        f"<figcaption>{text}: {known.size} conversations</figcaption></figure>"
    )


def _heading(name: str) -> str:
    label, unit = LABELS[name]
    return f"{label} ({unit})" if unit else label


def _cell(values: dict[str, Any], key: str) -> str:
    value = values.get(key)
    return "" if value is None else f"{value:g}"
