"""`report.html` and its plots, for people: derived from the report, not evidence, not hashed.

matplotlib draws through its Agg canvas directly (no pyplot, no global state, no display).
"""

from __future__ import annotations

import html as _html
import json
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from verify import conversation_html, headline, page, players, waveform
from verify import evidence as ev
from verify._gaps import MIN_GAP_MS
from verify.figures import Analysis, DirectionDetail, clock_origin
from verify.host import WINDOW_S
from verify.rules import direction_label

COLUMNS = 2000  # waveform envelope resolution: min/max per column
STATE_COLOURS = {
    "detected": "tab:green",
    "truncated": "tab:olive",
    "late": "tab:orange",
    "repeated": "tab:purple",
    "fragment": "tab:red",
    "unexpected": "tab:gray",
}


def write_html(run_dir: Path, report: dict[str, Any], analysis: Analysis) -> Path:
    """Draw the plots and write `report.html` beside them; returns its path.

    The page answers first (the verdict banner, the headline cards: `verify.headline`), then
    lets the evidence be heard (`verify.players`), then keeps the detail: plots and tables, each
    only where the run has its figures (an agent run has no bursts, so no tone table).
    """
    images = []
    for detail in analysis.details:
        name = f"{detail.label.replace('->', '-to-')}.png"
        _waveform(run_dir, detail, run_dir / name)
        images.append(
            (f"What {detail.label.split('->')[1]} heard from {detail.label.split('->')[0]}", name)
        )
    _timeline(run_dir, report, run_dir / "timeline.png")
    what = "latency, gaps and host stalls" if report["directions"] else "host stalls"
    images.insert(0, (f"Timeline: {what} on the run's clock", "timeline.png"))
    extra = ""
    if "conversation" in report:  # an agent under test: its conversation instead of bursts
        conversation_html.draw(report, run_dir / conversation_html.IMAGE)
        images.insert(0, ("The conversation: turns, answers, responses", conversation_html.IMAGE))
        extra = conversation_html.table(report)
    if report["directions"]:
        _latency(report, run_dir / "latency.png")
        images.append(("Mouth-to-ear latency per burst", "latency.png"))
    if any(d.get("quality") for d in report["directions"]):
        _quality(report, run_dir / "quality.png")
        images.append(("Speech quality (ViSQOL MOS-LQO per segment) beside latency", "quality.png"))
    top = headline.banner(report, headline.signature(run_dir))
    page = _page(report, top, waveform.streams(run_dir, report), images, extra)
    path = run_dir / ev.HTML
    path.write_text(page, encoding="utf-8")
    return path


def _save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=100)


def _waveform(run_dir: Path, detail: DirectionDetail, path: Path) -> None:
    fig = Figure(figsize=(12, 3.2), layout="constrained")
    ax = fig.add_subplot()
    if (wav := run_dir / detail.wav).is_file():
        with ev.Recording(wav) as recording:
            low, high, per = recording.envelope(COLUMNS)
        t = (np.arange(low.size) * per + per / 2) / ev.SAMPLE_RATE
        ax.fill_between(t, low / 32768.0, high / 32768.0, color="tab:blue", linewidth=0)
    for state, colour in STATE_COLOURS.items():
        onsets = [o for o, s in zip(detail.onsets, detail.states, strict=True) if s == state]
        if onsets:
            ax.vlines(
                np.array(onsets) / ev.SAMPLE_RATE,
                -1,
                1,
                colors=colour,
                linewidth=0.8,
                label=f"{state} ({len(onsets)})",
            )
    ax.set_xlabel("received stream time (s)")
    ax.set_ylabel("amplitude")
    ax.set_ylim(-1, 1)
    ax.set_title(f"{detail.label}: received waveform, burst onsets marked")
    if detail.onsets.size:
        ax.legend(loc="upper right", fontsize="small")
    _save(fig, path)


def _timeline(run_dir: Path, report: dict[str, Any], path: Path) -> None:
    """One time axis (the run's clock): per-burst latency and gaps, the capture process's and
    the server's stalls, and the machine's steal and pressure; host stalls shaded on all, and a
    freeze (the whole run stood still) darker."""
    if not report["directions"]:  # an agent under test: no bursts, the host's axes alone
        fig = Figure(figsize=(12, 4.5), layout="constrained")
        ax_stall, ax_cpu = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1.4])
        ax_stall.set_title("Host stalls on the run's clock")
        _host_axes(run_dir, report, ax_stall, ax_cpu)
        _host_spans(report, [ax_stall, ax_cpu])
        ax_stall.set_ylabel("stall (ms per window)")
        ax_cpu.set_ylabel("CPU (%)")
        ax_cpu.set_xlabel("run time (s, from the manifest's clock)")
        _save(fig, path)
        return
    fig = Figure(figsize=(12, 7.5), layout="constrained")
    ax_lat, ax_stall, ax_cpu = fig.subplots(3, 1, sharex=True, height_ratios=[3, 2, 1.4])
    for d, colour in zip(report["directions"], ("tab:blue", "tab:green"), strict=False):
        label = direction_label(d)
        timed = [b for b in d["bursts"] if b["state"] == "detected"]
        ax_lat.plot(
            [b["sent_s"] for b in timed],
            [b["latency_ms"] for b in timed],
            marker="o", markersize=3, linewidth=0.8, color=colour, label=f"{label} latency",
        )  # fmt: skip
        missed = [b["sent_s"] for b in d["bursts"] if b["state"] in ("lost", "late")]
        if missed:
            ax_lat.plot(missed, [0] * len(missed), "x", color=colour, label=f"{label} lost/late")
        for gap in d["gaps"]:
            start = gap["start_s"]
            ax_lat.axvspan(start, start + gap["duration_ms"] / 1000, color=colour, alpha=0.25)
    ax_lat.set_ylabel("latency (ms)")
    ax_lat.set_title("Per-burst latency (shaded: gaps) and host stalls, on one time axis")
    if report["directions"]:
        ax_lat.legend(loc="upper right", fontsize="small")
    _host_axes(run_dir, report, ax_stall, ax_cpu)
    _host_spans(report, [ax_lat, ax_stall, ax_cpu])
    ax_stall.set_ylabel("stall (ms per window)")
    ax_cpu.set_ylabel("CPU (%)")
    ax_cpu.set_xlabel("run time (s, from the manifest's clock)")
    _save(fig, path)


def _host_spans(report: dict[str, Any], axes: list[Axes]) -> None:
    """The host's stalls shaded on every axis, a freeze darker and named on the first."""
    for stall in report["host"]["stalls"]:
        for ax in axes:
            ax.axvspan(stall["at_s"] - WINDOW_S, stall["at_s"], color="tab:red", alpha=0.12)
    for freeze in report["host"].get("freezes", []):
        for ax in axes:
            ax.axvspan(freeze["start_s"], freeze["at_s"], color="black", alpha=0.15)
        axes[0].annotate(
            f"host froze {freeze['stood_ms']:.0f} ms", (freeze["at_s"], 1.0),
            xycoords=("data", "axes fraction"), xytext=(3, -12), textcoords="offset points",
            fontsize="small",
        )  # fmt: skip


def _host_axes(run_dir: Path, report: dict[str, Any], ax_stall: Axes, ax_cpu: Axes) -> None:
    """The capture process's, the server's and the agent worker's stalls, and the machine's
    steal and pressure, from `host.csv` when the run has one."""
    manifest = ev.read_manifest(run_dir)
    host_name = ev.host_file(manifest)
    host = None
    if host_name is not None and (run_dir / host_name).is_file():
        host = ev.read_host(run_dir / host_name, partial_tail=report["status"] != "complete")
    if host is not None and len(host):
        t = (host.t_ns - clock_origin(manifest)) / 1e9
        for name, style in (
            ("customer_send_late_ms", "-"),
            ("support_send_late_ms", "-"),
            ("loop_lag_ms", "--"),
            ("customer_recv_gap_ms", ":"),
            ("support_recv_gap_ms", ":"),
            ("server_wait_ms", "-."),
            ("agent_wait_ms", "-."),
        ):
            if np.isfinite(host.columns[name]).any():  # the agent's: when the run started it
                ax_stall.plot(t, host.columns[name], style, linewidth=0.9, label=name)
        ax_stall.axhline(20, color="tab:red", linewidth=0.6, linestyle="--")
        ax_stall.set_yscale("symlog", linthresh=20)
        ax_stall.set_ylim(bottom=0)
        for name in ("steal_pct", "pressure_pct"):
            ax_cpu.plot(t, host.columns[name], linewidth=0.9, label=name)
        ax_stall.legend(loc="upper right", fontsize="x-small", ncols=2)
        ax_cpu.legend(loc="upper right", fontsize="x-small")
    else:
        ax_stall.text(0.5, 0.5, "no host figures in this run", ha="center", va="center",
                      transform=ax_stall.transAxes)  # fmt: skip


def _latency(report: dict[str, Any], path: Path) -> None:
    fig = Figure(figsize=(12, 3.6), layout="constrained")
    ax = fig.add_subplot()
    for d in report["directions"]:
        ids = [b["burst"] for b in d["bursts"] if b["state"] == "detected"]
        fit = [b["latency_ms"] for b in d["bursts"] if b["state"] == "detected"]
        raw = [b["latency_raw_ms"] for b in d["bursts"] if b["state"] == "detected"]
        label = direction_label(d)
        ax.plot(ids, fit, marker="o", markersize=3, linewidth=0.8, label=f"{label} (fit)")
        ax.plot(
            ids,
            raw,
            marker="x",
            markersize=4,
            linewidth=0,
            alpha=0.6,
            label=f"{label} (raw frame time)",
        )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("burst")
    ax.set_ylabel("latency (ms)")
    ax.set_title("Mouth-to-ear latency per burst")
    ax.legend(loc="upper right", fontsize="small")
    _save(fig, path)


def _quality(report: dict[str, Any], path: Path) -> None:
    """MOS per segment over the run's time, above the latency of the bursts on the same axis."""
    fig = Figure(figsize=(12, 5), layout="constrained")
    ax_mos, ax_lat = fig.subplots(2, 1, sharex=True, height_ratios=(1, 1))
    for k, d in enumerate(report["directions"]):
        label, colour = direction_label(d), f"C{k}"
        q = d.get("quality") or {"segments": [], "segment_s": 0}
        for i, s in enumerate(q["segments"]):  # a bar over the segment's stretch of the run
            start, end = s["sent_s"], s["sent_s"] + q["segment_s"]
            ax_mos.hlines(
                s["mos"], start, end, linewidth=2.5, color=colour, label=label if i == 0 else None
            )
        timed = [b for b in d["bursts"] if b["state"] == "detected"]
        ax_lat.plot(
            [b["sent_s"] for b in timed],
            [b["latency_ms"] for b in timed],
            marker="o",
            markersize=2,
            linewidth=0.8,
            color=colour,
            label=label,
        )
    minimum = report["thresholds"].get("min_mos")
    if minimum is not None:
        ax_mos.axhline(minimum, color="tab:red", linestyle="--", linewidth=0.8, label="min_mos")
    ax_mos.set_ylim(1, 5.1)
    ax_mos.set_ylabel("MOS-LQO")
    ax_mos.set_title("Speech quality of the probe (ViSQOL, speech mode) and latency")
    ax_mos.legend(loc="lower right", fontsize="small")
    ax_lat.set_ylabel("latency (ms)")
    ax_lat.set_xlabel("run time (s, from the manifest's clock)")
    ax_lat.legend(loc="upper right", fontsize="small")
    _save(fig, path)


def _row(cells: list[Any], tag: str = "td") -> str:
    return "<tr>" + "".join(f"<{tag}>{_html.escape(str(c))}</{tag}>" for c in cells) + "</tr>"


def _gap_line(direction: dict[str, Any], gap: dict[str, Any]) -> str:
    return (
        f"{direction['from']} → {direction['to']}: {gap['duration_ms']:.1f} ms from "
        f"{gap['start_s']:.3f} s (burst {gap['burst']})"
    )


def _page(
    report: dict[str, Any],
    top: headline.Banner,
    streams: list[waveform.Stream],
    images: list[tuple[str, str]],
    extra: str = "",
) -> str:
    """The page: the banner and the cards, the players, then the detail."""
    esc = _html.escape
    verdict = report["verdict"]
    failures = "".join(
        f"<li>{esc(f)}" + (f" <i>(host: {esc(h)})</i>" if h else "") + "</li>"
        for f, h in zip(verdict["failures"], verdict["host_stalls"], strict=True)
    )
    if verdict["reason"]:
        failures = f"<li><b>{esc(verdict['reason'])}</b></li>" + failures
    figures = "".join(
        f'<figure><img src="{esc(src)}" alt="{esc(title)}">'
        f"<figcaption>{esc(title)}</figcaption></figure>"
        for title, src in images
    )
    tones = ""
    if report["directions"]:  # an agent run has no bursts: no tone table, no gaps
        gaps = "".join(
            f"<li>{esc(_gap_line(d, g))}</li>" for d in report["directions"] for g in d["gaps"]
        )
        tones = (
            f"<h3>The directions' figures</h3><table>{''.join(_rows(report['directions']))}"
            f"</table><h3>Gaps (audio of heard bursts not heard, at least {MIN_GAP_MS:g} ms)</h3>"
            f"<ul>{gaps or '<li>none</li>'}</ul>"
        )
    frozen = " ".join(f"Freeze: {f['line']}." for f in report["host"].get("freezes", []))
    bounds = ", ".join(f"{k} > {v:g}" for k, v in report["host"]["bounds"].items())
    body = f"""<h1>echoproof run {esc(report["run_id"])}</h1>
{_banner(top)}
<section id="headline">{_cards(headline.cards(report))}</section>
<section id="evidence"><h2>Listen to the evidence</h2>
<p>Each recording is the run's own file, played from its folder. Click a marked region (or the
waveform) to play from there; the red line follows the playback.</p>
{players.players(streams)}
{players.turns(report, streams)}</section>
<section id="detail"><h2>Detail</h2>
<p>Room {esc(str(report["room"]))} on {esc(str(report["server_url"]))},
{esc(str(report["started_at"]))} to {esc(str(report["ended_at"]))},
status {esc(report["status"])}.</p>
<h3>Verdict: {top.word}</h3><ul>{failures or "<li>no threshold failed</li>"}</ul>
<p>Host: {len(report["host"]["stalls"])} windows with a stall beyond its bound
({esc(bounds)}). {esc(frozen)}</p>
<p>Latency headline figures use the <b>{esc(report["latency_method"])}</b> method
(receive time from a robust fit of arrival time over neighbouring frames); the raw per-frame
figure is shown beside it. Re-check with <code>python -m verify &lt;run folder&gt;</code>.</p>
{extra}
{tones}
{figures}
</section>"""
    return page.document(f"echoproof {report['run_id']}: {top.word}", body, script=True)


def _banner(top: headline.Banner) -> str:
    """The verdict, its reason, the signature's status and the signer's key id."""
    esc = _html.escape
    sig = top.signature
    key = f'key <code class="key-id">{esc(sig.key_id)}</code>' if sig.key_id else "no key"
    return (
        f'<header id="verdict" class="banner {top.status}" data-status="{top.status}">'
        f'<div class="word">{top.word}</div><div class="reason">{esc(top.reason)}</div>'
        f'<div class="signature">Signature: <span class="signature-status">'
        f"{esc(sig.status)}</span>, {key}"
        + (f', <span class="signature-trust">{esc(sig.standing)}</span>' if sig.standing else "")
        + "</div></header>"
    )


def _cards(groups: list[headline.CardGroup]) -> str:
    """Each group's cards: value, unit, and the threshold it is judged against."""
    esc = _html.escape
    out = []
    for g in groups:
        cards = []
        for c in g.cards:
            state = {True: "ok", False: "fail", None: "none"}[c.ok]
            if c.threshold is None:
                limit = "no threshold"
            else:
                sign = "≤" if c.bound == "max" else "≥"
                limit = f"{c.threshold} {sign} {c.limit:g} {c.unit}".strip()
            value = json.dumps(c.value)
            cards.append(
                f'<div class="card {state}" data-path="{esc(c.path)}" data-value="{value}">'
                f'<div class="label">{esc(c.label)}</div><div class="value">'
                f'<span class="number">{page.number(c.value, c.unit)}</span> '
                f'<span class="unit">{esc(c.unit) if c.value is not None else ""}</span></div>'
                f'<div class="limit">{esc(limit)}</div></div>'
            )
        out.append(f'<h2>{esc(g.title)}</h2><div class="cards">{"".join(cards)}</div>')
    return "".join(out)


def _rows(dirs: list[dict[str, Any]]) -> list[str]:
    """The table of the directions' figures, one row per figure."""
    keys = [
        ("frames sent", "frames_sent"),
        ("frames received", "frames_received"),
        ("PCM bytes sent", "bytes_sent"),
        ("PCM bytes received", "bytes_received"),
        ("tone heard (Hz)", "tone_hz"),
        ("level (dBFS)", "level_dbfs"),
        ("SNR (dB)", "snr_db"),
        ("bursts sent", "bursts_sent"),
        ("bursts detected (timed)", "bursts_detected"),
        ("bursts truncated (start not heard)", "bursts_truncated"),
        ("bursts lost", "bursts_lost"),
        ("bursts late", "bursts_late"),
        ("bursts repeated", "bursts_repeated"),
        ("glitches", "glitches"),
        ("gaps: total (ms)", "gap_total_ms"),
        ("gaps: longest (ms)", "gap_max_ms"),
    ]
    rows = [_row(["figure", *[f"{d['from']} → {d['to']}" for d in dirs]], "th")]
    rows += [_row([label, *[d[key] for d in dirs]]) for label, key in keys]
    for stat in ("min", "median", "p95", "max", "jitter"):
        rows.append(_row([f"latency {stat} (ms, fit)", *[d["latency_ms"][stat] for d in dirs]]))
    rows.append(_row(["latency median (ms, raw)", *[d["latency_raw_ms"]["median"] for d in dirs]]))
    for key in (
        "packets_received",
        "packets_lost",
        "packet_loss_pct",
        "jitter_ms",
        "jitter_buffer_ms",
        "concealed_samples",
    ):
        rows.append(_row([f"RTP {key}", *[d["rtc"][key] for d in dirs]]))
    if any(d.get("quality") for d in dirs):
        for label, key in (
            ("speech MOS-LQO (ViSQOL, mean)", "mos"),
            ("speech MOS-LQO (lowest segment)", "mos_min"),
            ("segments scored", "segments_scored"),
            ("probe pitch heard / sent", "pitch_ratio"),
        ):
            rows.append(_row([label, *[(d.get("quality") or {}).get(key) for d in dirs]]))
        left_out = [(d.get("quality") or {}).get("pitch_segments_left_out") for d in dirs]
        rows.append(
            _row(
                [
                    "segments left out of the pitch (host disturbed)",
                    *[", ".join(map(str, x)) if x else "none" for x in left_out],
                ]
            )
        )
    return rows
