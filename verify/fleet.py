"""One summary across the conversations of a fleet: the run folders one `python -m pipeline
--pairs N` made (on one machine or over a Ray cluster), recognised by the `fleet` id each manifest
holds.

`python -m verify DIR` re-checks every run folder as always; for each fleet of two or more
conversations found among them it also writes `DIR/fleet-<id>/fleet.json` and `fleet.html`,
recomputed from the run folders alone (each run's re-checked report):

- how many conversations were OK, FAILed or INCONCLUSIVE;
- per headline figure, its spread across conversations (`p50`, `p95`, `max` or `min`): a
  conversation's worse direction for mouth-to-ear latency (median and p95), packet loss, the
  longest gap and the lowest MOS; the greeting, the dispatch time, the time from the dispatch to
  the first audio heard and when that was, the longest barge-in stop, the talk-over, the mean
  word error rate of what the agent understood, the turns whose first words it lost and the
  Customer's speech sent before the agent could hear it, of an agent under test;
- the response of an agent under test over every answered turn of every caller (`p50`, `p95`,
  `p99`, `max`);
- the conversations worst first, each with a link to its own report, and a histogram of each
  figure across them (`verify.fleet_html`);
- the fleet's verdict against the fleet thresholds in the runs' `config.thresholds`
  (`FleetThresholds`): a minimum share of OK conversations and a limit on the response p95. It
  decides the command's exit code for the fleet's runs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from verify import evidence as ev
from verify import fleet_html
from verify.check import CheckResult
from verify.errors import VerifyError
from verify.thresholds import FleetThresholds

SCHEMA = "echoproof.fleet/1"
FLEET_JSON = "fleet.json"
FLEET_HTML = "fleet.html"
_ORDER = {"fail": 0, "inconclusive": 1, "ok": 2}  # worst first
_FLEET_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # it names a folder


def fleet_dir_name(fleet_id: str) -> str:
    """The summary's folder beside the run folders: `fleet-<id>`."""
    return f"fleet-{fleet_id}"


@dataclasses.dataclass(frozen=True)
class Member:
    """One conversation of a fleet: its re-check and what its report says."""

    result: CheckResult
    report: dict[str, Any] | None

    @property
    def run_dir(self) -> Path:
        return Path(self.result.run)


@dataclasses.dataclass(frozen=True)
class FleetSummary:
    """A fleet's summary (`summary` is fleet.json's content) and where it was written."""

    fleet_id: str
    status: str  # ok, fail, inconclusive
    reason: str
    summary: dict[str, Any]
    path: Path


def fleet_id_of(run_dir: Path) -> str | None:
    """The run's fleet id from its manifest, None when it has none (or no readable manifest)."""
    try:
        fleet = ev.read_manifest(run_dir).fleet
    except (OSError, VerifyError):
        return None
    value = None if fleet is None else fleet.get("id")
    return value if isinstance(value, str) and _FLEET_ID.fullmatch(value) else None


def group(results: Sequence[CheckResult]) -> dict[str, list[CheckResult]]:
    """The results by fleet id, for fleets of two or more runs found side by side."""
    fleets: dict[str, list[CheckResult]] = {}
    for r in results:
        fleet_id = fleet_id_of(Path(r.run))
        if fleet_id is not None:
            fleets.setdefault(fleet_id, []).append(r)
    return {k: v for k, v in fleets.items() if len(v) >= 2}


def summarise(results: Sequence[CheckResult]) -> list[FleetSummary]:
    """Write the summary of every fleet among `results` (see the module docstring)."""
    out = []
    for fleet_id, members in sorted(group(results).items()):
        runs = [Member(r, _report(Path(r.run))) for r in members]
        out.append(_write(fleet_id, runs))
    return out


def _report(run_dir: Path) -> dict[str, Any] | None:
    try:
        report = json.loads((run_dir / ev.REPORT).read_bytes())
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) else None


def _write(fleet_id: str, runs: list[Member]) -> FleetSummary:
    summary = build(fleet_id, runs)
    where = _common_parent(runs) / fleet_dir_name(fleet_id)
    where.mkdir(exist_ok=True)
    _write_atomic(where / FLEET_JSON, json.dumps(summary, indent=1, sort_keys=True).encode())
    _write_atomic(where / FLEET_HTML, fleet_html.render(summary).encode())
    verdict = summary["verdict"]
    return FleetSummary(
        fleet_id, verdict["status"], "; ".join(verdict["failures"]), summary, where / FLEET_JSON
    )


def _common_parent(runs: list[Member]) -> Path:
    """The folder that holds every run folder of the fleet (their parent, usually)."""
    return Path(os.path.commonpath([m.run_dir.resolve().parent for m in runs]))


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


# -- the figures -----------------------------------------------------------------------------------


def build(fleet_id: str, runs: list[Member]) -> dict[str, Any]:
    """fleet.json's content (see the module docstring)."""
    thresholds = _thresholds(runs)
    rows = sorted((_row(m) for m in runs), key=_worst_first)
    counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "fail", "inconclusive")}
    responses = [t for m in runs for t in _turn_responses(m.report)]
    figures = {name: _spread([r[name] for r in rows], kind) for name, kind in _HEADLINES}
    summary: dict[str, Any] = {
        "schema": SCHEMA,
        "fleet": fleet_id,
        "conversations": len(rows),
        "counts": counts,
        "ok_share": _r(counts["ok"] / len(rows)),
        "figures": figures,
        "response_ms": _pooled(responses),
        "thresholds": thresholds.to_dict(),
        "runs": rows,
    }
    summary["verdict"] = verdict(summary, thresholds)
    return summary


# (name, what is worse): a conversation's headline figures, spread across the fleet
_HEADLINES = (
    ("latency_median_ms", "high"),
    ("latency_p95_ms", "high"),
    ("packet_loss_pct", "high"),
    ("gap_max_ms", "high"),
    ("mos_min", "low"),
    ("greeting_ms", "high"),
    ("dispatch_ms", "high"),
    ("first_audio_ms", "high"),
    ("first_audio_s", "high"),
    ("response_p95_ms", "high"),
    ("barge_in_stop_max_ms", "high"),
    ("talk_over_ms", "high"),
    ("wer_mean", "high"),
    ("first_words_lost_turns", "high"),
    ("customer_audio_lost_ms", "high"),
)


def _row(m: Member) -> dict[str, Any]:
    """One conversation: its status, reason, link and worst headline figures."""
    report = m.report or {}
    directions = report.get("directions") or []

    def worst(get: Callable[[dict[str, Any]], Any], pick: Callable[..., Any]) -> float | None:
        values = [v for v in (get(d) for d in directions) if isinstance(v, int | float)]
        return pick(values) if values else None

    conv = report.get("conversation") or {}
    said = conv.get("transcripts") or {}
    lost = said.get("first_words_lost_turns")
    return {
        "run": m.run_dir.name,
        "status": m.result.status,
        "reason": m.result.reason or None,
        "report": f"../{m.run_dir.name}/{ev.HTML}",
        "latency_median_ms": worst(lambda d: (d.get("latency_ms") or {}).get("median"), max),
        "latency_p95_ms": worst(lambda d: (d.get("latency_ms") or {}).get("p95"), max),
        "packet_loss_pct": worst(lambda d: (d.get("rtc") or {}).get("packet_loss_pct"), max),
        "gap_max_ms": worst(lambda d: d.get("gap_max_ms"), max),
        "mos_min": worst(lambda d: (d.get("quality") or {}).get("mos_min"), min),
        "greeting_ms": _number(conv.get("greeting_ms")),
        "dispatch_ms": _number(conv.get("dispatch_ms")),
        "first_audio_ms": _number(conv.get("first_audio_ms")),
        "first_audio_s": _number(conv.get("first_audio_s")),
        "response_p95_ms": _number((conv.get("response_ms") or {}).get("p95")),
        "barge_in_stop_max_ms": _number((conv.get("barge_in_stop_ms") or {}).get("max")),
        "talk_over_ms": _number(conv.get("talk_over_ms")),
        "wer_mean": _number(said.get("wer_mean")),
        "first_words_lost_turns": (
            len(lost) if said.get("available") and isinstance(lost, list) else None
        ),
        "customer_audio_lost_ms": _number(
            ((conv.get("first_audio") or {}).get("customer") or {}).get("lost_ms")
        ),
    }


def _worst_first(row: dict[str, Any]) -> tuple[int, float, str]:
    severity = max(
        (v for v in (row["response_p95_ms"], row["latency_p95_ms"]) if v is not None),
        default=0.0,
    )
    return (_ORDER.get(row["status"], 0), -severity, row["run"])


def _turn_responses(report: dict[str, Any] | None) -> list[float]:
    conv = (report or {}).get("conversation") or {}
    return [
        float(t["response_ms"])
        for t in conv.get("turns") or []
        if isinstance(t.get("response_ms"), int | float)
    ]


def _spread(values: Iterable[Any], worse: str) -> dict[str, Any] | None:
    known = np.array([v for v in values if isinstance(v, int | float)], dtype=np.float64)
    if not known.size:
        return None
    edge = "max" if worse == "high" else "min"
    return {
        "p50": _r(float(np.percentile(known, 50))),
        "p95": _r(float(np.percentile(known, 95 if worse == "high" else 5))),
        edge: _r(float(known.max() if worse == "high" else known.min())),
        "count": int(known.size),
    }


def _pooled(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None, "count": 0}
    a = np.array(values, dtype=np.float64)
    return {
        "p50": _r(float(np.percentile(a, 50))),
        "p95": _r(float(np.percentile(a, 95))),
        "p99": _r(float(np.percentile(a, 99))),
        "max": _r(float(a.max())),
        "count": int(a.size),
    }


def _thresholds(runs: list[Member]) -> FleetThresholds:
    """The fleet thresholds of the first run's `config.thresholds` (a fleet shares one config)."""
    try:
        config = ev.read_manifest(runs[0].run_dir).config or {}
    except (OSError, VerifyError):
        config = {}
    thresholds = config.get("thresholds")
    return FleetThresholds.from_dict(thresholds if isinstance(thresholds, dict) else None)


def verdict(summary: dict[str, Any], limits: FleetThresholds) -> dict[str, Any]:
    """The fleet's verdict: `fail` when a fleet threshold fails outright, `inconclusive` when
    only the inconclusive conversations keep the OK share below its minimum, else `ok`."""
    failures: list[str] = []
    status = "ok"
    n = summary["conversations"]
    counts = summary["counts"]
    if counts["ok"] / n < limits.fleet_min_ok_share:
        line = (
            f"OK conversations {counts['ok']} of {n} ({summary['ok_share']:g}) are below the "
            f"minimum share {limits.fleet_min_ok_share:g}"
        )
        spared = (counts["ok"] + counts["inconclusive"]) / n >= limits.fleet_min_ok_share
        status = "inconclusive" if spared else "fail"
        failures.append(line)
    p95 = summary["response_ms"]["p95"]
    if p95 is not None and p95 > limits.fleet_max_response_p95_ms:
        failures.append(
            f"response p95 over every turn {p95:g} ms exceeds the maximum "
            f"{limits.fleet_max_response_p95_ms:g} ms"
        )
        status = "fail"
    return {"status": status, "failures": failures}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _r(value: float) -> float:
    return round(value, 4) + 0.0
