"""What the host did to a run, from `host.csv`, and which threshold failures it explains.

A shared machine can starve the capture process or the embedded server; the receivers' jitter
buffers then turn the stall into latency, gaps and lost bursts that look like a bad network
(../shared/docs/host-noise.md). The report's `host` block gives, per figure of `host.csv`
(`pipeline.host` defines each), its worst window, its p99 over windows and when the worst
happened; `stalls` lists every window in which a figure went beyond its bound in `BOUNDS`.

Attribution (`attribute`). Each threshold failure has time windows on the run's clock (seconds
after the manifest's `clock.monotonic_ns`):

- latency (median, p95): each burst above the limit, from the run's start to its arrival: a
  stall of S ms can add at most about S ms to the latency of everything after it, and the
  jitter buffer may keep it for the rest of the run. The stall must be at least as long as the
  burst's excess over the limit, so a stall cannot excuse more delay than it could have caused;
- bursts lost or late: each such burst's send time, `NEAR_S` either side, and the stall at least
  `LOST_STALL_MS` long;
- gaps: the gap, `NEAR_S` either side, and the stall at least `GAP_SHARE` of the gap's length
  (a 25 ms hiccup does not excuse a 500 ms hole; a stall of S ms starves the receiver for
  about S ms, and its jitter buffer can lose more than that while it recovers). While the
  jitter buffer is still draining the delay a stall left (the last timed burst before the gap
  is `DRAIN_MS` or more above the direction's lowest latency), it shortens what it plays, and
  the tone shows holes seconds after the stall: then the window reaches back to the run's
  start, as for latency;
- frames received share, SNR: the whole run, any stall.

A failure is host-disturbed when every one of its windows holds a stall (long enough, for
latency). Packet loss on the wire, a run that did not complete, and missing or unexpected files
are never put down to the host. A run whose failures are all host-disturbed is `inconclusive`:
its figures stay as measured, and the verdict names the longest stall involved.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from verify.evidence import HOST_COLUMNS, HostTable

# A window in which one of these figures went beyond its bound is a host stall.
BOUNDS: dict[str, float] = {
    "customer_send_late_ms": 20.0,
    "support_send_late_ms": 20.0,
    "customer_recv_gap_ms": 60.0,
    "support_recv_gap_ms": 60.0,
    "loop_lag_ms": 20.0,
    "server_wait_ms": 150.0,
}
NEAR_S = 2.0  # how close to a lost burst or a gap a stall must be to explain it
LOST_STALL_MS = 150.0  # the shortest stall that can explain a lost burst (half of one)
GAP_SHARE = 0.25  # the shortest stall that can explain a gap, as a share of its length
DRAIN_MS = 20.0  # latency this far above the lowest: the jitter buffer still holds a stall
FIGURES = HOST_COLUMNS[2:]  # every figure of host.csv, for the report


@dataclasses.dataclass(frozen=True)
class Stall:
    """One window in which a figure went beyond its bound."""

    at_s: float  # the window's end on the run's clock
    figure: str
    value: float  # ms
    bound: float

    @property
    def line(self) -> str:
        """What happened, in words a user reads in the verdict."""
        v, t = f"{self.value:.0f} ms", f"{self.at_s:.1f} s"
        role = self.figure.split("_", 1)[0]
        if self.figure.endswith("_send_late_ms"):
            return f"{role}'s sending process was {v} behind real time at {t}"
        if self.figure.endswith("_recv_gap_ms"):
            return f"{role}'s receiving side got no audio frame for {v} at {t}"
        if self.figure == "loop_lag_ms":
            return f"the capture process's event loop ran {v} late at {t}"
        return f"the embedded server's threads waited {v} for a CPU in one second, at {t}"

    def to_dict(self) -> dict[str, Any]:
        """The report's form."""
        return {
            "at_s": _r(self.at_s, 3),
            "figure": self.figure,
            "value_ms": _r(self.value, 3),
            "bound_ms": self.bound,
            "line": self.line,
        }


@dataclasses.dataclass(frozen=True)
class Window:
    """Part of a failure in time: [start_s, end_s] on the run's clock; a stall must be at least
    `excess_ms` long to explain it."""

    start_s: float
    end_s: float
    excess_ms: float = 0.0


@dataclasses.dataclass(frozen=True)
class Failure:
    """One failed threshold: its verdict line, and when it happened.

    `windows` None: the whole run. `host_may_explain` False: never the host's doing.
    """

    line: str
    windows: tuple[Window, ...] | None = None
    host_may_explain: bool = True


def _r(value: float, digits: int) -> float:
    return round(value, digits) + 0.0


def stalls(host: HostTable, origin_ns: int) -> list[Stall]:
    """Every window beyond a bound, in time order (one entry per figure and window)."""
    at = (host.t_ns - origin_ns) / 1e9
    found: list[Stall] = []
    for figure, bound in BOUNDS.items():
        values = host.columns[figure]
        for i in np.flatnonzero(values > bound):
            found.append(Stall(float(at[i]), figure, float(values[i]), bound))
    found.sort(key=lambda s: (s.at_s, s.figure))
    return found


def summary(
    host: HostTable | None, origin_ns: int, scheduling: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The report's `host` block: per figure its worst window, p99 and when; every stall; and
    how the capture process was scheduled while it talked (the manifest's `realtime`, written
    by `pipeline.realtime`: SCHED_FIFO, or normal and why), None when not recorded."""
    if host is None:
        return {"available": False, "windows": 0, "bounds": BOUNDS, "figures": {}, "stalls": [],
                "scheduling": scheduling}  # fmt: skip
    at = (host.t_ns - origin_ns) / 1e9
    figures: dict[str, Any] = {}
    for name in FIGURES:
        values = host.columns[name]
        known = np.isfinite(values)
        if not known.any():
            figures[name] = None
            continue
        worst = int(np.nanargmax(values))
        figures[name] = {
            "max": _r(float(values[worst]), 3),
            "p99": _r(float(np.percentile(values[known], 99)), 3),
            "max_at_s": _r(float(at[worst]), 3),
        }
    found = stalls(host, origin_ns)
    return {
        "available": True,
        "windows": len(host),
        "bounds": BOUNDS,
        "figures": figures,
        "stalls": [s.to_dict() for s in found],
        "scheduling": scheduling,
    }


def _explains(stall: Stall, window: Window) -> bool:
    # a stall's window ends at at_s and lasted about a second before it
    return (
        stall.at_s - 1.0 <= window.end_s
        and stall.at_s >= window.start_s
        and stall.value >= window.excess_ms
    )


def attribute(failures: list[Failure], found: list[Stall]) -> list[Stall | None]:
    """Per failure, the longest stall that explains it (module docstring), or None."""
    out: list[Stall | None] = []
    for failure in failures:
        if not failure.host_may_explain or not found:
            out.append(None)
            continue
        if failure.windows is None:
            out.append(max(found, key=lambda s: s.value))
            continue
        chosen: list[Stall] = []
        for window in failure.windows:
            matching = [s for s in found if _explains(s, window)]
            if not matching:
                chosen = []
                break
            chosen.append(max(matching, key=lambda s: s.value))
        out.append(max(chosen, key=lambda s: s.value) if chosen else None)
    return out


def verdict(failures: list[Failure], found: list[Stall]) -> dict[str, Any]:
    """The report's verdict: passed, failed, or inconclusive (every failure host-disturbed)."""
    lines = [f.line for f in failures]
    if not failures:
        return {"passed": True, "status": "passed", "failures": [], "host_stalls": [],
                "reason": None}  # fmt: skip
    blamed = attribute(failures, found)
    if all(s is not None for s in blamed):
        worst = max((s for s in blamed if s is not None), key=lambda s: s.value)
        status = "inconclusive"
        reason: str | None = f"{worst.line}; rerun on a quieter machine"
    else:
        status, reason = "failed", None
    return {
        "passed": False,
        "status": status,
        "failures": lines,
        "host_stalls": [None if s is None else s.line for s in blamed],
        "reason": reason,
    }


def lost_window(sent_s: float) -> Window:
    """A lost or late burst's window: `NEAR_S` either side, a stall of `LOST_STALL_MS` or more."""
    return Window(sent_s - NEAR_S, sent_s + NEAR_S, LOST_STALL_MS)


def gap_window(start_s: float, duration_ms: float, *, draining: bool = False) -> Window:
    """A gap's window: `NEAR_S` either side (from the run's start while `draining`), a stall of
    `GAP_SHARE` of its length or more."""
    start = -math.inf if draining else start_s - NEAR_S
    return Window(start, start_s + duration_ms / 1000 + NEAR_S, GAP_SHARE * duration_ms)


def draining(bursts: list[dict[str, Any]], lowest_ms: float | None, at_s: float) -> bool:
    """Whether the last burst timed before `at_s` arrived `DRAIN_MS` or more above `lowest_ms`."""
    before = [b for b in bursts if b["state"] == "detected" and b["sent_s"] <= at_s]
    return (
        lowest_ms is not None and bool(before) and before[-1]["latency_ms"] - lowest_ms >= DRAIN_MS
    )


def latency_window(arrival_s: float, excess_ms: float) -> Window:
    """An over-limit burst's window: from the run's start to its arrival."""
    return Window(-math.inf, arrival_s, excess_ms)
