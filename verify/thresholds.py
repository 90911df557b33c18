"""Pass/fail limits applied to a run's figures, with documented defaults."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Self

from verify.errors import VerifyError


class _Limits:
    """What every set of limits does: read from `config.thresholds` over its defaults, and
    written back as a JSON-ready dict. `_SHARES` name the fields that are shares (at most 1)."""

    _SHARES: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Self:
        """The defaults with `data`'s fields of this class merged over them; an unknown field
        or a bad value raises."""
        values = _values(cls, data)
        if values is None:
            return cls()
        for name in cls._SHARES:
            if values.get(name, 0.0) > 1.0:
                raise VerifyError(
                    f"threshold {name!r} is {values[name]!r}, expected a share between 0 and 1"
                )
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The thresholds as a JSON-ready dict."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]


@dataclasses.dataclass(frozen=True)
class Thresholds(_Limits):
    """Limits a run must meet; every field may be overridden by `config.thresholds` in the manifest.

    Attributes:
        min_frames_received_share: frames the receiver got / frames the sender handed to the SDK,
            per direction (0.95 allows for the subscription starting after the first frames).
        max_bursts_lost: bursts scheduled and sent but never detected (late ones count as lost).
        max_packet_loss_pct: RTP packets lost / (received + lost) x 100, from the SDK's statistics.
        max_latency_median_ms: the median mouth-to-ear latency of detected bursts.
        max_latency_p95_ms: the 95th percentile of mouth-to-ear latency.
        min_snr_db: the median signal-to-noise ratio of detected bursts.
        max_gap_ms: the longest gap (audio of a heard burst that the receiver did not hear; see
            `verify._gaps`), per direction.
        match_window_ms: a detection arriving more than this after its burst was sent is "late",
            not "detected"; it is also the matching window of the burst schedule.
        min_mos: the probe's mean ViSQOL MOS-LQO per direction (`verify.quality`; a run without a
            probe has none). Measured on the embedded server over 120 s: 4.94-4.96 clean, 4.95
            at 2 % and 5 % random loss (the SDK recovers it), 4.92-4.93 at 10 %, 4.78-4.85 at
            20 %, 4.57-4.69 at 30 %; 4.14 for a sender playing 24 kHz audio as 22.05 kHz.
        max_pitch_shift_pct: how far the probe's frequencies may arrive from where they were sent
            (a sample-rate mismatch shifts them: 22.05 kHz audio played as 24 kHz, 8.1 %).
    """

    min_frames_received_share: float = 0.95
    max_bursts_lost: int = 0
    max_packet_loss_pct: float = 1.0
    max_latency_median_ms: float = 400.0
    max_latency_p95_ms: float = 600.0
    min_snr_db: float = 20.0
    max_gap_ms: float = 200.0
    match_window_ms: float = 1000.0
    min_mos: float = 4.5
    max_pitch_shift_pct: float = 2.0
    _SHARES = ("min_frames_received_share",)


@dataclasses.dataclass(frozen=True)
class AgentThresholds(_Limits):
    """Limits on a conversation with an agent under test (`verify.conversation_figures`); set in
    the same `config.thresholds` as :class:`Thresholds`.

    Attributes:
        max_turns_unanswered: turns with no agent audio starting within the answer window.
        max_response_median_ms: the median response (end of a turn as sent to the onset of the
            agent's audio after it, as heard).
        max_response_p95_ms: the 95th percentile of the response.
        max_wer: the mean word error rate of the agent's transcripts of the turns with known
            words (`verify.transcripts`); a run whose agent publishes no transcripts, or whose
            turns have no text, is not judged on it.
        max_first_words_lost: leading words of a turn missing from the agent's transcript of
            it (its speech detection or STT started late), in any one turn.
        max_barge_in_stop_ms: how long the agent may go on talking once the Customer barged in
            (from the onset of the interrupting speech as sent to the end of the agent's audio
            as heard; `verify.turn_taking`). A livekit-agents agent stops in about 0.55-0.65 s
            with its default 0.5 s minimum interruption; an agent that talks on to the end of
            the Customer's speech fails whatever this is.
        max_talk_over_ms: the agent's audio heard while the Customer was speaking, per turn
            (barge-in turns aside).
    """

    max_turns_unanswered: int = 0
    max_response_median_ms: float = 3000.0
    max_response_p95_ms: float = 5000.0
    max_wer: float = 0.25
    max_first_words_lost: int = 0
    max_barge_in_stop_ms: float = 1500.0
    max_talk_over_ms: float = 500.0


@dataclasses.dataclass(frozen=True)
class FleetThresholds(_Limits):
    """Limits on a fleet, the conversations of one `--pairs N` run taken together
    (`verify.fleet`); set in the same `config.thresholds`.

    Attributes:
        fleet_min_ok_share: the share of conversations whose verdict is OK.
        fleet_max_response_p95_ms: the 95th percentile of the response over every answered turn
            of every caller (an agent under test).
    """

    fleet_min_ok_share: float = 1.0
    fleet_max_response_p95_ms: float = 5000.0
    _SHARES = ("fleet_min_ok_share",)


_CLASSES = (Thresholds, AgentThresholds, FleetThresholds)


def _values(cls: type, data: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """`data`'s values for the fields of `cls` (one of the threshold classes), checked; the
    other classes' names are skipped, any other name raises."""
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise VerifyError(f"thresholds must be a JSON object, found {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    others = {f.name for c in _CLASSES for f in dataclasses.fields(c)}
    values: dict[str, Any] = {}
    for name, value in data.items():
        if name not in fields:
            if name in others:
                continue
            known = ", ".join(sorted(others))
            raise VerifyError(f"unknown threshold {name!r}; expected one of {known}")
        default = getattr(cls, name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise VerifyError(f"threshold {name!r} is {value!r}, expected a number")
        if not math.isfinite(value) or value < 0:
            raise VerifyError(f"threshold {name!r} is {value!r}, expected a finite number >= 0")
        if isinstance(default, int) and not isinstance(default, bool):
            if value != int(value):
                raise VerifyError(f"threshold {name!r} is {value!r}, expected a whole number")
            value = int(value)
        else:
            value = float(value)
        values[name] = value
    return values
