"""Active speakers from the audio level publishers put in their RTP packets, with no I/O.

Each audio packet carries its level (RFC 6464 ``ssrc-audio-level``: -dBov, 0 loudest, 127
silent). The RTP tap only counts (:meth:`AudioLevel.observe`: one comparison and an add or two);
every :data:`UPDATE_INTERVAL_S` the server's speaker task folds the counts into a smoothed linear
level (:meth:`AudioLevel.update`). The parameters are livekit-server's defaults
(``AudioLevelConfig``): a packet at -35 dBov or louder is loud, an interval is loud when at least
40% of its packets were, and the level is an exponential average over about two intervals.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from livekit.protocol import models, rtc

ACTIVE_LEVEL = 35  # -dBov: this loud or louder counts as speech
MIN_LOUD_SHARE = 0.4  # of an interval's packets, for the interval to count as speech
UPDATE_INTERVAL_S = 0.4  # how often levels are folded and speaker changes sent
SMOOTH_INTERVALS = 2  # the average's centre of mass, in intervals
_SMOOTHING = 2 / (SMOOTH_INTERVALS + 1)


def linear(level_dbov: float) -> float:
    """A level in -dBov (0 loudest) as a linear amplitude, 1 loudest."""
    return 10 ** (-level_dbov / 20)


ACTIVE_THRESHOLD = linear(ACTIVE_LEVEL)


class AudioLevel:
    """The smoothed level of one published audio track."""

    __slots__ = ("heard", "level", "loud", "loud_sum")

    def __init__(self) -> None:
        self.heard = 0  # packets with a level since the last update
        self.loud = 0  # of which at ACTIVE_LEVEL or louder
        self.loud_sum = 0  # the sum of those packets' levels (-dBov)
        self.level = 0.0  # smoothed, linear, 0..1

    def observe(self, level: int) -> None:
        """Count one packet's level (-dBov); called for every packet, so kept tiny."""
        self.heard += 1
        if level <= ACTIVE_LEVEL:
            self.loud += 1
            self.loud_sum += level

    def update(self) -> float:
        """Fold the packets counted since the last call into the level; returns it.

        An interval with too few loud packets (or none at all: the track went quiet, DTX, or
        stopped) pulls the level towards 0; otherwise towards the loud packets' mean level,
        lowered by the share of the interval that was quiet.
        """
        heard, loud, loud_sum = self.heard, self.loud, self.loud_sum
        self.heard = self.loud = self.loud_sum = 0
        target = 0.0
        if heard and loud >= MIN_LOUD_SHARE * heard:
            share = loud / heard
            target = linear(loud_sum / loud - 20 * math.log10(share))
        self.level += (target - self.level) * _SMOOTHING
        if self.level < 1e-6:
            self.level = 0.0
        return self.level

    @property
    def active(self) -> bool:
        """Whether the smoothed level says the track carries speech."""
        return self.level >= ACTIVE_THRESHOLD


class Speakers:
    """Who in a room is speaking: which participants' speaking changed since the last call."""

    def __init__(self) -> None:
        self.active: dict[str, float] = {}  # participant sid: level, as last sent

    def changes(self, levels: Mapping[str, float]) -> list[models.SpeakerInfo] | None:
        """The speakers to send for participants' current ``levels`` (sid: loudest track's
        level), or None when the set of active speakers is unchanged.

        Everyone active now (loudest first), then those no longer active, at level 0.
        """
        now = {sid: level for sid, level in levels.items() if level >= ACTIVE_THRESHOLD}
        if now.keys() == self.active.keys():
            self.active = now
            return None
        stopped = [sid for sid in self.active if sid not in now]
        self.active = now
        ordered = sorted(now.items(), key=lambda item: -item[1])
        infos = [models.SpeakerInfo(sid=sid, level=level, active=True) for sid, level in ordered]
        infos += [models.SpeakerInfo(sid=sid, level=0.0, active=False) for sid in stopped]
        return infos


def speakers_changed(speakers: Iterable[models.SpeakerInfo]) -> rtc.SignalResponse:
    """A ``speakers_changed`` update carrying ``speakers``."""
    return rtc.SignalResponse(speakers_changed=rtc.SpeakersChanged(speakers=list(speakers)))
