"""Active speakers: the audio level publishers send becomes speakers_changed for the room."""

from __future__ import annotations

import asyncio

from echoproof import sfu
from echoproof.sfu.speakers import ACTIVE_THRESHOLD, UPDATE_INTERVAL_S, AudioLevel, Speakers
from tests.conftest import scaled
from tests.echoproof.sfu._clients import ToneSender, joined, until

# A talker still counted as speaking would be announced again at the next speaker update; no
# event says there will be none, so the check watches a few update intervals.
QUIET_S = scaled(2.5 * UPDATE_INTERVAL_S)


async def test_a_talker_becomes_and_stops_being_an_active_speaker(server: sfu.Server) -> None:
    """A loud tone makes its publisher an active speaker for the others; unpublishing ends it."""
    async with (
        joined(server.url, "listener", "talk") as listener,
        joined(server.url, "talker", "talk") as talker,
    ):
        heard: list[list[str]] = []
        listener.on(
            "active_speakers_changed",
            lambda speakers: heard.append([p.identity for p in speakers]),
        )
        async with ToneSender(talker, 440.0, amplitude=0.5):
            await until(lambda: any("talker" in s for s in heard), 10)
            (publication,) = talker.local_participant.track_publications.values()
            await talker.local_participant.unpublish_track(publication.sid)
            await until(lambda: "talker" not in heard[-1], 10)
            await asyncio.sleep(QUIET_S)
            assert "talker" not in heard[-1]


def test_levels_fold_into_speaking_and_silence() -> None:
    """Loud packets raise the smoothed level over the threshold; silent ones bring it down."""
    level = AudioLevel()
    for _ in range(3):
        for _ in range(20):
            level.observe(10)
        level.update()
    assert level.active and level.level > ACTIVE_THRESHOLD
    for _ in range(3):
        for _ in range(20):
            level.observe(127)
        level.update()
    assert not level.active
    for _ in range(10):
        level.update()  # nothing heard: the track stopped
    assert level.level == 0.0

    speakers = Speakers()
    assert speakers.changes({"PA_a": 0.0}) is None
    started = speakers.changes({"PA_a": 0.5, "PA_b": 0.001})
    assert started is not None and [(s.sid, s.active) for s in started] == [("PA_a", True)]
    assert speakers.changes({"PA_a": 0.4}) is None
    stopped = speakers.changes({})
    assert stopped is not None and [(s.sid, s.active, s.level) for s in stopped] == [
        ("PA_a", False, 0.0)
    ]
