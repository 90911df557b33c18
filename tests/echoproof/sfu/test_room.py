"""Rooms, participants and sids without I/O."""

from __future__ import annotations

from livekit.protocol import models

from echoproof.sfu.room import Participant, Room, Track, new_sid


def test_sids_have_livekit_prefixes_and_are_unique() -> None:
    """PA_, TR_ and RM_ prefixes, never repeated."""
    assert Participant(identity="a").sid.startswith("PA_")
    assert Track(cid="c", name="n").sid.startswith("TR_")
    assert Room(name="r").sid.startswith("RM_")
    assert len({new_sid("PA_") for _ in range(1000)}) == 1000


def test_same_identity_replaces_and_only_the_seated_one_leaves() -> None:
    """Adding an identity twice returns the first; removing the stale one is a no-op."""
    room = Room(name="r")
    first, second = Participant(identity="x"), Participant(identity="x")
    assert room.add(first) is None
    assert room.add(second) is first
    assert not room.remove(first)
    assert room.participants == {"x": second}
    assert room.remove(second)
    assert room.participants == {}


def test_empty_rooms_expire_after_their_timeout() -> None:
    """A join-made room expires when empty; an API room after empty_timeout."""
    made_by_join = Room(name="j")
    p = Participant(identity="p")
    made_by_join.add(p)
    assert not made_by_join.expired(1e9)
    made_by_join.remove(p)
    assert made_by_join.expired(made_by_join.empty_since or 0)
    api_room = Room(name="a", empty_timeout=10, created_by_api=True)
    start = api_room.empty_since or 0
    assert not api_room.expired(start + 9)
    assert api_room.expired(start + 10)


def test_participant_info_versions_increase_and_carry_tracks() -> None:
    """Each ParticipantInfo is newer than the last and lists the tracks."""
    p = Participant(identity="p", name="P")
    first = p.info()
    t = Track(cid="c", name="mic", muted=True)
    p.tracks[t.sid] = t
    second = p.info()
    assert second.version > first.version
    assert [x.sid for x in second.tracks] == [t.sid]
    assert second.tracks[0].muted
    assert second.tracks[0].type == models.TrackType.AUDIO
    assert second.is_publisher
    info = Room(name="r").info()
    assert info.name == "r" and info.num_participants == 0
