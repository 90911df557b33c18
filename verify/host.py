"""What the host did to a run, from `host.csv`, and which threshold failures it explains.

A shared machine can starve the capture process or the embedded server, or stop the whole
machine for a moment (a VM pause, a burst of CPU steal); the receivers' jitter buffers then turn
the stall into latency, gaps and time-stretched audio that look like a bad network. The report's
`host` block gives, per figure of `host.csv` (`pipeline.recording.host` defines each), its worst
window, its p99 over windows and when the worst happened; `stalls` lists every window in which a
figure went beyond its bound in `BOUNDS`, and `freezes` every window in which the run's processes
all stood still together (`freezes`): every sender behind real time, the event loop late and
every receiver without audio, all beyond their bounds in one window, for at least
`FREEZE_MIN_MS`.

Disturbances (`disturbances`, per direction). A stall's effects outlast it: the receiver's jitter
buffer grows during the stall, then drains, shortening and stretching what it plays, and
latency stays raised until the drain is over. So each stalled window disturbs a direction from
the window's start until the first burst sent after it whose latency is back within `DRAIN_MS`
of the direction's lowest (to the end of the run when none is; to the window's end in a run with
no timed bursts). The direction's `disturbed` list in the report holds these spans.

Attribution (`attribute`). Each threshold failure has time windows on the run's clock (seconds
after the manifest's `clock.monotonic_ns`), each with the shortest stall that could explain it:

- latency (median, p95): each burst above the limit, from the run's start to its arrival; the
  stall must be at least the burst's excess over the limit (a stall of S ms adds at most about
  S ms to what comes after it);
- bursts lost or late: each such burst's send time, `NEAR_S` either side, and a stall of at
  least `LOST_STALL_MS`;
- gaps: the gap, `NEAR_S` either side, and a stall of at least `GAP_SHARE` of its length;
- MOS: each low segment, `NEAR_S` either side (`verify.quality`);
- frames received share, SNR: the whole run, any stall;
- an agent under test's turn unanswered, or answered slower than the limit: from `NEAR_S`
  before the end of its speech until the answer was heard (or the answer window closed), a
  stall of `LOST_STALL_MS` (unanswered) or of the response's excess over the limit. A stall of
  the agent's own worker (`agent_wait_ms`: one of its threads waiting for a CPU, when the run
  started the worker) explains these as our own stalls do;
- a turn the agent misheard (word error rate, first words lost): from `NEAR_S` before its
  speech until its end, a stall of `LOST_STALL_MS`.

A window is explained by a disturbance of its direction that overlaps it and whose stall is long
enough; in a freeze's disturbance the length is not asked: while the whole run stood still and
its buffers drain, every effect of the audio is the freeze's. A failure is host-disturbed when
every window of it is explained. Packet loss on the wire, a run that did not complete, a
sample-rate mismatch seen outside any disturbance, and missing or unexpected files are never put
down to the host. A run whose failures are all host-disturbed is `inconclusive`: its figures stay
as measured, and the verdict names the freeze, else the longest stall involved.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from verify.evidence import HOST_COLUMNS, HostTable
from verify.timing import round_stable

# A window in which one of these figures went beyond its bound is a host stall.
BOUNDS: dict[str, float] = {
    "customer_send_late_ms": 20.0,
    "support_send_late_ms": 20.0,
    "customer_recv_gap_ms": 60.0,
    "support_recv_gap_ms": 60.0,
    "loop_lag_ms": 20.0,
    "server_wait_ms": 150.0,
    "agent_wait_ms": 150.0,
}
# A window in which every measured one of these went beyond its bound is a freeze.
_FREEZE_GROUPS = (
    ("customer_send_late_ms", "support_send_late_ms"),
    ("loop_lag_ms",),
    ("customer_recv_gap_ms", "support_recv_gap_ms"),
)
# A freeze shorter than this stays an ordinary stall: the jitter buffer absorbs most of it, and
# it may explain only what its length can (the run's own start stalls the capture process for
# 20-110 ms here).
FREEZE_MIN_MS = 150.0
NEAR_S = 2.0  # how close to a lost burst or a gap a stall must be to explain it
LOST_STALL_MS = 150.0  # the shortest stall that can explain a lost burst (half of one)
GAP_SHARE = 0.25  # the shortest stall that can explain a gap, as a share of its length
DRAIN_MS = 20.0  # latency this far above the lowest: the jitter buffer still holds a stall
WINDOW_S = 1.0  # host.csv's window: a stall happened in the second before its row
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
        if self.figure == "agent_wait_ms":
            return f"a thread of the agent's worker waited {v} for a CPU in one second, at {t}"
        return f"the embedded server's threads waited {v} for a CPU in one second, at {t}"

    def to_dict(self) -> dict[str, Any]:
        """The report's form."""
        return {
            "at_s": round_stable(self.at_s, 3),
            "figure": self.figure,
            "value_ms": round_stable(self.value, 3),
            "bound_ms": self.bound,
            "line": self.line,
        }


@dataclasses.dataclass(frozen=True)
class Freeze:
    """A window in which every process of the run stood still together: at least `stood_ms`."""

    start_s: float  # the window's start on the run's clock
    at_s: float  # its end
    stood_ms: float  # the smallest of the stalled figures

    @property
    def line(self) -> str:
        """What happened, in words a user reads in the verdict."""
        return (
            f"the whole host stood still for {self.stood_ms:.0f} ms at {self.at_s:.1f} s "
            "(senders, event loop and receivers all stopped at once: a VM pause or a burst of "
            "CPU steal)"
        )

    def to_dict(self) -> dict[str, Any]:
        """The report's form."""
        return {
            "start_s": round_stable(self.start_s, 3),
            "at_s": round_stable(self.at_s, 3),
            "stood_ms": round_stable(self.stood_ms, 3),
            "line": self.line,
        }


@dataclasses.dataclass(frozen=True)
class Disturbance:
    """A span of one direction that may carry a stalled window's effects (module docstring).

    `end_s` None: the direction's latency never settled again before the run ended.
    """

    start_s: float
    end_s: float | None
    stall_ms: float  # the longest stall of the window (a freeze: how long it stood still)
    freeze: bool
    line: str

    def overlaps(self, start_s: float, end_s: float) -> bool:
        """Whether [start_s, end_s] meets this span."""
        return self.start_s <= end_s and (self.end_s is None or self.end_s >= start_s)

    def to_dict(self) -> dict[str, Any]:
        """The report's form."""
        return {
            "start_s": round_stable(self.start_s, 3),
            "end_s": None if self.end_s is None else round_stable(self.end_s, 6),
            "stall_ms": round_stable(self.stall_ms, 3),
            "freeze": self.freeze,
            "line": self.line,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Disturbance:
        """The report's form read back."""
        return cls(data["start_s"], data["end_s"], data["stall_ms"], data["freeze"], data["line"])


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
    `direction` (`customer->support`): whose disturbances may explain it; None: any.
    """

    line: str
    windows: tuple[Window, ...] | None = None
    host_may_explain: bool = True
    direction: str | None = None


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


def freezes(host: HostTable, origin_ns: int) -> list[Freeze]:
    """Every window in which senders, event loop and receivers all stalled (module docstring).

    A stopped process shows each figure when it next acts (the timer fires, a frame is sent or
    received, the sampler ends its window), so one freeze may spread its figures over two
    windows: a window that does not hold every figure alone is taken together with the next.
    """
    at = (host.t_ns - origin_ns) / 1e9
    n = len(host)
    found: list[Freeze] = []
    i = 0
    while i < n:
        last = i
        stood = _stood_ms(host, i, i)
        if (
            stood is None
            and i + 1 < n
            and _any_beyond(host, i)
            and _stood_ms(host, i + 1, i + 1) is None
        ):
            last, stood = i + 1, _stood_ms(host, i, i + 1)
        if stood is not None and stood >= FREEZE_MIN_MS:
            first = i - 1 if i > 0 and _overran(host, i - 1) else i
            start = float(at[first]) - float(host.columns["window_ms"][first]) / 1000
            found.append(Freeze(start, float(at[last]), stood))
        i = last + 1
    return found


def _overran(host: HostTable, i: int) -> bool:
    """Whether window `i` outlasted its second by more than a loop lag's bound: the sampler
    itself was held, so a freeze that shows in the next window began in this one."""
    return bool(host.columns["window_ms"][i] > 1000 * WINDOW_S + BOUNDS["loop_lag_ms"])


def _any_beyond(host: HostTable, i: int) -> bool:
    """Whether window `i` holds any freeze figure beyond its bound."""
    return any(host.columns[f][i] > BOUNDS[f] for group in _FREEZE_GROUPS for f in group)


def _stood_ms(host: HostTable, first: int, last: int) -> float | None:
    """The smallest of the freeze figures over windows `first`..`last` (each at its largest
    there), when every measured one is beyond its bound; else None."""
    stood: list[float] = []
    for group in _FREEZE_GROUPS:
        measured = []
        for figure in group:
            values = host.columns[figure][first : last + 1]
            if np.isfinite(values).any():
                measured.append(float(np.nanmax(values)))
                if measured[-1] <= BOUNDS[figure]:
                    return None
        if not measured:
            return None
        stood.extend(measured)
    return min(stood)


def summary(
    host: HostTable | None, origin_ns: int, scheduling: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The report's `host` block: per figure its worst window, p99 and when; every stall and
    every freeze; and how the capture process was scheduled while it talked (the manifest's
    `realtime`, written by `pipeline.recording.realtime`: SCHED_FIFO, or normal and why), None
    when not recorded."""
    if host is None:
        return {"available": False, "windows": 0, "bounds": BOUNDS, "figures": {}, "stalls": [],
                "freezes": [], "scheduling": scheduling}  # fmt: skip
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
            "max": round_stable(float(values[worst]), 3),
            "p99": round_stable(float(np.percentile(values[known], 99)), 3),
            "max_at_s": round_stable(float(at[worst]), 3),
        }
    return {
        "available": True,
        "windows": len(host),
        "bounds": BOUNDS,
        "figures": figures,
        "stalls": [s.to_dict() for s in stalls(host, origin_ns)],
        "freezes": [f.to_dict() for f in freezes(host, origin_ns)],
        "scheduling": scheduling,
    }


def disturbances(host: Mapping[str, Any], bursts: Sequence[Mapping[str, Any]]) -> list[Disturbance]:
    """One direction's disturbed spans (module docstring), from the report's `host` block and the
    direction's per-burst entries (none: no drain is known, a span ends with its window)."""
    timed = [(b["sent_s"], b["latency_ms"]) for b in bursts if b["state"] == "detected"]
    settled = min(latency for _, latency in timed) + DRAIN_MS if timed else None

    def settle(at_s: float) -> float | None:
        """When the direction's latency was back near its lowest after `at_s`."""
        if settled is None:
            return at_s
        back = next((sent for sent, latency in timed if sent >= at_s and latency <= settled), None)
        return None if back is None else float(back)

    frozen = host["freezes"]
    out = [
        Disturbance(f["start_s"], settle(f["at_s"]), f["stood_ms"], True, f["line"]) for f in frozen
    ]
    windows: dict[float, list[Mapping[str, Any]]] = {}
    for stall in host["stalls"]:
        if not any(f["start_s"] < stall["at_s"] <= f["at_s"] for f in frozen):
            windows.setdefault(stall["at_s"], []).append(stall)
    for at_s, group in windows.items():
        worst = max(group, key=lambda s: s["value_ms"])
        out.append(
            Disturbance(at_s - WINDOW_S, settle(at_s), worst["value_ms"], False, worst["line"])
        )
    out.sort(key=lambda d: d.start_s)
    return out


def _explains(d: Disturbance, window: Window) -> bool:
    return d.overlaps(window.start_s, window.end_s) and (d.freeze or d.stall_ms >= window.excess_ms)


def _rank(d: Disturbance) -> tuple[bool, float]:
    return (d.freeze, d.stall_ms)  # a freeze is named before any single stall


def attribute(
    failures: list[Failure], disturbed: Mapping[str, Sequence[Disturbance]]
) -> list[Disturbance | None]:
    """Per failure, the disturbance that explains it (module docstring), or None.

    `disturbed`: each direction's disturbances by label; a failure of no direction may be
    explained by any of them.
    """
    everyone = [d for spans in disturbed.values() for d in spans]
    out: list[Disturbance | None] = []
    for failure in failures:
        spans = everyone if failure.direction is None else disturbed.get(failure.direction, [])
        if not failure.host_may_explain or not spans:
            out.append(None)
            continue
        if failure.windows is None:
            out.append(max(spans, key=_rank))
            continue
        chosen: list[Disturbance] = []
        for window in failure.windows:
            matching = [d for d in spans if _explains(d, window)]
            if not matching:
                chosen = []
                break
            chosen.append(max(matching, key=_rank))
        out.append(max(chosen, key=_rank) if chosen else None)
    return out


def verdict(
    failures: list[Failure], disturbed: Mapping[str, Sequence[Disturbance]]
) -> dict[str, Any]:
    """The report's verdict: passed, failed, or inconclusive (every failure host-disturbed)."""
    lines = [f.line for f in failures]
    if not failures:
        return {"passed": True, "status": "passed", "failures": [], "host_stalls": [],
                "reason": None}  # fmt: skip
    blamed = attribute(failures, disturbed)
    if all(d is not None for d in blamed):
        worst = max((d for d in blamed if d is not None), key=_rank)
        status = "inconclusive"
        reason: str | None = f"{worst.line}; rerun on a quieter machine"
    else:
        status, reason = "failed", None
    return {
        "passed": False,
        "status": status,
        "failures": lines,
        "host_stalls": [None if d is None else d.line for d in blamed],
        "reason": reason,
    }


def lost_window(sent_s: float) -> Window:
    """A lost or late burst's window: `NEAR_S` either side, a stall of `LOST_STALL_MS` or more."""
    return Window(sent_s - NEAR_S, sent_s + NEAR_S, LOST_STALL_MS)


def gap_window(start_s: float, duration_ms: float) -> Window:
    """A gap's window: `NEAR_S` either side, a stall of `GAP_SHARE` of its length or more."""
    return Window(start_s - NEAR_S, start_s + duration_ms / 1000 + NEAR_S, GAP_SHARE * duration_ms)


def latency_window(arrival_s: float, excess_ms: float) -> Window:
    """An over-limit burst's window: from the run's start to its arrival."""
    return Window(-math.inf, arrival_s, excess_ms)


def speech_window(start_s: float, end_s: float) -> Window:
    """A turn an agent under test misheard: from `NEAR_S` before its speech started until it
    ended; a stall of `LOST_STALL_MS`, as for a lost burst."""
    return Window(start_s - NEAR_S, end_s, LOST_STALL_MS)


def turn_window(spoken_end_s: float, until_s: float, excess_ms: float = LOST_STALL_MS) -> Window:
    """A turn of an agent under test answered late or not at all: from `NEAR_S` before the end
    of its speech until its answer was heard (or its answer window closed); a stall at least as
    long as the response's excess over its limit (an unanswered turn: `LOST_STALL_MS`)."""
    return Window(spoken_end_s - NEAR_S, until_s, excess_ms)
