"""impairment benchmark: the figures of a signed report against a known injected impairment.

``python -m benchmarks.impairment [--quick]``. Every case is one real capture (``pipeline.capture``,
two SDK agents, one conversation) against ``python -m sfu`` started in a child process with the
impairment on its command line (a child, as the pipeline runs it: the in-process server adds
hundreds of ms of event-loop delay, see ``pipeline._server``); ``verify.write_report`` then signs
the report and the figures are read from its ``report.json``.

- delay: ``--delay-ms D --impair-to support-agent`` delays only customer -> support, so the
  unimpaired support -> customer direction of the same run is a control. Cases 0, 100 and 300 ms
  run interleaved, ``repeats`` times. ``shift_ms`` = median latency (customer -> support) minus
  the one of the no-delay run of the same repeat; ``shift_controlled_ms`` subtracts the change of
  the control direction too (common-mode noise: the event loop, the machine);
  ``shift_net_of_buffer_ms`` subtracts instead the change of the receiver's mean jitter-buffer
  delay (RTC statistics in ``rtc-stats.json``). Reported: the median over repeats, minus D
  (``error_*``), and the spread (max - min over repeats).
- loss: ``--loss 5 --seed 1`` on every stream. Per direction, the receiver's RTP statistics'
  packet loss against the binomial 95% interval of 5% for the packets that reached the forwarder
  (received + lost), concealment beside it; and whether verify's default thresholds fail the run
  naming packet loss.
- jitter: ``--jitter-ms 0/20/40`` on every stream: latency p95 - min, verify's latency jitter and
  the RTP jitter (the receiver's last RFC 3550 estimate), and the median latency per case (the 0
  case is the delay benchmark's baseline). Medians over both directions and the repeats.
- outage: ``--outage S:2 --impair-to support-agent`` with nearly continuous bursts (0.9 s in every
  1.0 s, duplex): per direction, the longest gap of the report (``gaps``: sent burst audio not
  heard, see ``verify._gaps``), its error against 2 s, and its start against S: the server counts
  S from the stream's first packet, taken here as the sender's first sent frame
  (``start_error_ms`` = gap start - first sent frame - S). Beside it, as a cross-check, the
  longest quiet stretch of the received WAV between the first and last burst heard, from where
  the level starts to fall to where it is back to half (see :func:`_gap`), and when it began after
  the direction's first received frame. A stretch may be longer than the outage by the part of a
  0.1 s pause between bursts that touches its ends.
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from loguru import logger

import verify
from benchmarks._server import sfu_process
from pipeline import capture
from pipeline.config import from_dict
from verify import evidence as ev

TO_SUPPORT = "support-agent"
LOSS_PCT = 5.0
OUTAGE_S = 2.0
QUIET_BLOCK = 240  # 5 ms at 48 kHz


async def _case(
    impair: list[str], duration_s: float, work: Path, **extra: Any
) -> tuple[dict[str, Any], Path, list[str]]:
    """One capture against a server impaired by ``impair``: its report, run folder, failures."""
    async with sfu_process(*impair) as (url, _):
        config = from_dict(
            {
                "livekit": {"url": url, "api_key": "devkey", "api_secret": "secret"},
                "duration_s": duration_s,
                "out_dir": str(work / f"case-{time.monotonic_ns()}"),
                **extra,
            }
        )
        outcomes = await capture(config, live_stream=io.StringIO())
    (outcome,) = outcomes
    if outcome.status != "complete":
        raise RuntimeError(f"capture with {impair} ended {outcome.status}: {outcome.reason}")
    result = verify.write_report(outcome.run_dir, key_path=work / "signing-key.pem", html=False)
    report = json.loads((outcome.run_dir / "report.json").read_text())
    return report, outcome.run_dir, result.failures


def _figures(report: dict[str, Any]) -> dict[str, Any]:
    """The figures of a report, keyed "to_support" / "to_customer" by receiver."""
    out = {}
    for d in report["directions"]:
        out["to_support" if d["to"].startswith("support") else "to_customer"] = d
    return out


def _buffer_ms(run_dir: Path) -> dict[str, float]:
    """Per receiver, the mean jitter-buffer delay of the run (RTC statistics, final sample)."""
    stats = json.loads((run_dir / "rtc-stats.json").read_text())
    out = {}
    for role, key in (("support", "to_support"), ("customer", "to_customer")):
        for stat in stats.get(role, {}).get("final", {}).get("subscriber_stats", []):
            body = stat.get("inbound_rtp", {})
            if body.get("stream", {}).get("kind") == "audio":
                inbound = body["inbound"]
                emitted = float(inbound.get("jitter_buffer_emitted_count", 0))
                if emitted:
                    out[key] = 1000 * float(inbound["jitter_buffer_delay"]) / emitted
    return out


def _spread(values: list[float]) -> float:
    return max(values) - min(values) if values else math.nan


async def _delay_and_jitter(quick: bool, work: Path) -> dict[str, Any]:
    duration_s = 10.0 if quick else 30.0
    repeats = 1 if quick else 3
    cases = {
        "0": [],
        "100": ["--delay-ms", "100", "--impair-to", TO_SUPPORT],
        "300": ["--delay-ms", "300", "--impair-to", TO_SUPPORT],
        "jitter_20": ["--jitter-ms", "20", "--seed", "1"],
        "jitter_40": ["--jitter-ms", "40", "--seed", "1"],
    }
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in cases}
    for _ in range(repeats):
        for name, impair in cases.items():  # interleaved: drift hits every case alike
            report, run_dir, _ = await _case(impair, duration_s, work)
            figures = _figures(report)
            for key, ms in _buffer_ms(run_dir).items():
                figures[key]["buffer_ms"] = ms
            runs[name].append(figures)
    delay: dict[str, Any] = {"duration_s": duration_s, "repeats": repeats}
    for d_ms in (100, 300):
        shift, controlled, net = [], [], []
        for base, case in zip(runs["0"], runs[str(d_ms)], strict=True):
            s = (
                case["to_support"]["latency_ms"]["median"]
                - base["to_support"]["latency_ms"]["median"]
            )
            c = (
                case["to_customer"]["latency_ms"]["median"]
                - base["to_customer"]["latency_ms"]["median"]
            )
            shift.append(s)
            controlled.append(s - c)
            buffers = case["to_support"].get("buffer_ms", math.nan) - base["to_support"].get(
                "buffer_ms", math.nan
            )
            net.append(s - buffers)
        delay[f"delay_{d_ms}"] = {
            "shift_ms": round(statistics.median(shift), 3),
            "error_ms": round(statistics.median(shift) - d_ms, 3),
            "shift_spread_ms": round(_spread(shift), 3),
            "shift_controlled_ms": round(statistics.median(controlled), 3),
            "error_controlled_ms": round(statistics.median(controlled) - d_ms, 3),
            "shift_controlled_spread_ms": round(_spread(controlled), 3),
            "shift_net_of_buffer_ms": round(statistics.median(net), 3),
            "error_net_of_buffer_ms": round(statistics.median(net) - d_ms, 3),
            "shift_net_of_buffer_spread_ms": round(_spread(net), 3),
            "per_repeat_shift_ms": [round(x, 3) for x in shift],
            "per_repeat_controlled_ms": [round(x, 3) for x in controlled],
            "within_1ms": abs(statistics.median(shift) - d_ms) <= 1.0,
            "controlled_within_1ms": abs(statistics.median(controlled) - d_ms) <= 1.0,
        }
    delay["baseline_median_ms"] = [r["to_support"]["latency_ms"]["median"] for r in runs["0"]]
    jitter: dict[str, Any] = {}
    for name, key in (("0", "jitter_0"), ("jitter_20", "jitter_20"), ("jitter_40", "jitter_40")):
        per: dict[str, list[float]] = {
            "median_ms": [],
            "p95_minus_min_ms": [],
            "latency_jitter_ms": [],
            "rtp_jitter_ms": [],
        }
        for figs in runs[name]:
            for d in figs.values():
                lat = d["latency_ms"]
                per["median_ms"].append(lat["median"])
                per["p95_minus_min_ms"].append(lat["p95"] - lat["min"])
                per["latency_jitter_ms"].append(lat["jitter"])
                per["rtp_jitter_ms"].append(d["rtc"]["jitter_ms"] or math.nan)
        jitter[key] = {k: round(statistics.median(v), 3) for k, v in per.items()}
    order = [jitter[k]["p95_minus_min_ms"] for k in ("jitter_0", "jitter_20", "jitter_40")]
    jitter["spread_grows"] = order[0] < order[1] < order[2]
    medians = [jitter[k]["median_ms"] for k in ("jitter_0", "jitter_20", "jitter_40")]
    jitter["median_grows"] = medians[0] < medians[1] < medians[2]
    return {"delay": delay, "jitter": jitter}


async def _loss(quick: bool, work: Path) -> dict[str, Any]:
    duration_s = 10.0 if quick else 30.0
    report, _, failures = await _case(["--loss", f"{LOSS_PCT:g}", "--seed", "1"], duration_s, work)
    out: dict[str, Any] = {"duration_s": duration_s}
    for key, d in _figures(report).items():
        rtc = d["rtc"]
        n = (rtc["packets_received"] or 0) + (rtc["packets_lost"] or 0)
        p = LOSS_PCT / 100
        half = 196.0 * math.sqrt(p * (1 - p) / n) if n else math.nan
        loss = rtc["packet_loss_pct"]
        out[key] = {
            "packets": n,
            "packet_loss_pct": loss,
            "interval_95_pct": [round(LOSS_PCT - half, 3), round(LOSS_PCT + half, 3)],
            "within_interval": loss is not None and abs(loss - LOSS_PCT) <= half,
            "concealed_samples": rtc["concealed_samples"],
            "concealment_events": rtc["concealment_events"],
        }
    out["failed_naming_loss"] = any("packet loss" in f for f in failures)
    out["failures"] = failures
    return out


def _gap(samples: np.ndarray) -> tuple[int, int]:
    """The longest quiet stretch, as (first sample, length in samples).

    Quiet: 5 ms blocks below 10% of the median burst level. Its edges are then moved to where
    the level starts to fall (NetEq's concealment fades a lost tone out over ~150 ms) and to
    where it is back to half (the stream resumes abruptly).
    """
    blocks = samples.size // QUIET_BLOCK
    rows = samples[: blocks * QUIET_BLOCK].astype(np.float64).reshape(blocks, QUIET_BLOCK)
    rms = np.sqrt((rows**2).mean(axis=1))
    level = float(np.median(rms[rms > 0.1 * rms.max()]))
    quiet = [*(rms < 0.1 * level).tolist(), False]
    first, length, start = 0, 0, None
    for i, q in enumerate(quiet):
        if q and start is None:
            start = i
        elif not q and start is not None:
            if i - start > length:
                first, length = start, i - start
            start = None
    begin, end = first, first + length
    while begin > 0 and rms[begin - 1] < 0.9 * level:
        begin -= 1
    while end < blocks and rms[end] < 0.5 * level:
        end += 1
    return begin * QUIET_BLOCK, (end - begin) * QUIET_BLOCK


async def _outage(quick: bool, work: Path) -> dict[str, Any]:
    duration_s = 10.0 if quick else 30.0
    start_s = 4.0 if quick else 10.0
    report, run_dir, _ = await _case(
        ["--outage", f"{start_s:g}:{OUTAGE_S:g}", "--impair-to", TO_SUPPORT],
        duration_s,
        work,
        mode="duplex",
        burst={"duration_s": 0.9, "period_s": 1.0, "ramp_s": 0.005, "amplitude": 0.5},
    )
    out: dict[str, Any] = {"duration_s": duration_s, "outage": [start_s, OUTAGE_S]}
    origin = json.loads((run_dir / ev.MANIFEST).read_text())["clock"]["monotonic_ns"]
    for key, d in _figures(report).items():
        sent = ev.read_timing(run_dir / d["files"]["sent"])
        first_sent_s = (int(sent.t_ns[0]) - origin) / 1e9
        longest = max(d["gaps"], key=lambda g: g["duration_ms"], default=None)
        samples = ev.read_wav(run_dir / d["files"]["wav"])
        arrivals = ev.read_timing(run_dir / d["files"]["arrivals"])
        # Only between the first and the last burst heard: not the silence before or after.
        onsets = [b["onset_sample"] for b in d["bursts"] if b["state"] == "detected"]
        lo, hi = int(onsets[0]), int(onsets[-1])
        begin, length = _gap(samples[lo:hi])
        begin += lo
        # The wall time of the quiet stretch's first sample, from the frame that holds it.
        frame = int(np.searchsorted(arrivals.sample, begin, "right")) - 1
        t0 = arrivals.t_ns[0]
        at = (arrivals.t_ns[frame] - t0) / 1e9 + (begin - arrivals.sample[frame]) / ev.SAMPLE_RATE
        gap = length / ev.SAMPLE_RATE
        out[key] = {
            "longest_gap_s": round(gap, 3),
            "gap_starts_s_after_first_frame": round(float(at), 3),
            "gap_error_ms": round((gap - OUTAGE_S) * 1000, 1),
            "report_gaps": len(d["gaps"]),
            "report_gap_ms": None if longest is None else longest["duration_ms"],
            "report_gap_error_ms": None
            if longest is None
            else round(longest["duration_ms"] - OUTAGE_S * 1000, 1),
            "report_gap_start_s": None if longest is None else longest["start_s"],
            "start_error_ms": None
            if longest is None
            else round((longest["start_s"] - first_sent_s - start_s) * 1000, 1),
            "report_gap_bursts": None if longest is None else longest["bursts"],
            "bursts_lost": d["bursts_lost"],
            "glitches": d["glitches"],
        }
    return out


async def _run(quick: bool, work: Path) -> dict[str, Any]:
    results = await _delay_and_jitter(quick, work)
    results["loss"] = await _loss(quick, work)
    results["outage"] = await _outage(quick, work)
    return results


def _print(r: dict[str, Any]) -> None:
    d = r["delay"]
    print(f"delay ({d['repeats']} repeat(s) of {d['duration_s']:g} s, baseline medians "
          f"{d['baseline_median_ms']} ms)")  # fmt: skip
    print(
        f"{'injected':>9} {'shift':>9} {'error':>8} {'spread':>7} "
        f"{'ctrl shift':>10} {'ctrl err':>8} {'ctrl spr':>8} {'net buf':>8}"
    )
    for ms in (100, 300):
        x = d[f"delay_{ms}"]
        print(
            f"{ms:>7}ms {x['shift_ms']:>9.2f} {x['error_ms']:>8.2f} {x['shift_spread_ms']:>7.2f} "
            f"{x['shift_controlled_ms']:>10.2f} {x['error_controlled_ms']:>8.2f} "
            f"{x['shift_controlled_spread_ms']:>8.2f} {x['shift_net_of_buffer_ms']:>8.2f}"
        )
    print(f"jitter  {'median':>8} {'p95-min':>8} {'lat jitter':>10} {'rtp jitter':>10}")
    for k in ("jitter_0", "jitter_20", "jitter_40"):
        j = r["jitter"][k]
        print(
            f"{k:>9} {j['median_ms']:>8.2f} {j['p95_minus_min_ms']:>8.2f} "
            f"{j['latency_jitter_ms']:>10.2f} {j['rtp_jitter_ms']:>10.2f}"
        )
    loss = r["loss"]
    for k in ("to_support", "to_customer"):
        x = loss[k]
        lo, hi = x["interval_95_pct"]
        print(f"loss {k}: {x['packet_loss_pct']} % of {x['packets']} packets, 95% interval "
              f"[{lo}, {hi}] {'ok' if x['within_interval'] else 'OUTSIDE'}, concealed "
              f"{x['concealed_samples']} samples")  # fmt: skip
    print(f"loss: default thresholds fail the run naming packet loss: {loss['failed_naming_loss']}")
    o = r["outage"]
    for k in ("to_support", "to_customer"):
        x = o[k]
        print(
            f"outage {o['outage']} {k}: report: {x['report_gaps']} gap(s), longest "
            f"{x['report_gap_ms']} ms (error {x['report_gap_error_ms']} ms) at "
            f"{x['report_gap_start_s']} s (start error {x['start_error_ms']} ms); WAV cross-check: "
            f"longest quiet {x['longest_gap_s']} s (error {x['gap_error_ms']} ms), "
            f"starting {x['gap_starts_s_after_first_frame']} s after the first frame"
        )


def run(quick: bool = False) -> dict[str, Any]:
    """Measure and print a small table; returns the figures (see the module docstring)."""
    logger.disable("pipeline")
    logger.disable("sfu")
    logger.disable("verify")
    try:
        with tempfile.TemporaryDirectory(prefix="echoproof-impair-") as tmp:
            results = asyncio.run(_run(quick, Path(tmp)))
    finally:
        logger.enable("pipeline")
        logger.enable("sfu")
        logger.enable("verify")
    _print(results)
    return results


if __name__ == "__main__":
    run(quick="--quick" in sys.argv[1:])
