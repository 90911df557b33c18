"""Fuzzing the signalling endpoint: garbage in, one connection answered or closed, nothing leaks."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest_asyncio
from aiortc import RTCPeerConnection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from livekit import api
from livekit.protocol import models
from livekit.protocol import rtc as proto

from echoproof import sfu
from tests.conftest import scaled
from tests.echoproof.sfu._clients import (
    API_KEY,
    API_SECRET,
    Listener,
    ToneSender,
    joined,
    token,
    until,
)

STEADY_ROOM = "steady"


def open_peer_connections() -> int:
    """aiortc peer connections not yet closed: all the server's (the SDK clients use libwebrtc)."""
    return sum(
        1
        for o in gc.get_objects()
        if isinstance(o, RTCPeerConnection) and o.connectionState != "closed"
    )


# -- strategies ------------------------------------------------------------------------------

ids = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
sdp = st.one_of(
    st.text(max_size=80),
    st.just(
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
    ),
)
requests = st.one_of(
    st.builds(
        lambda s: proto.SignalRequest(offer=proto.SessionDescription(type="offer", sdp=s)), sdp
    ),
    st.builds(
        lambda s: proto.SignalRequest(answer=proto.SessionDescription(type="answer", sdp=s)), sdp
    ),
    st.builds(
        lambda c, t: proto.SignalRequest(trickle=proto.TrickleRequest(candidateInit=c, target=t)),
        st.one_of(
            st.text(max_size=60), st.just('{"candidate": "candidate:1 1 udp 1 1.2.3.4 9 typ host"}')
        ),
        st.integers(0, 3),
    ),
    st.builds(
        lambda cid, n: proto.SignalRequest(
            add_track=proto.AddTrackRequest(cid=cid, name=n, type=models.TrackType.AUDIO)
        ),
        ids,
        ids,
    ),
    st.builds(
        lambda sid, m: proto.SignalRequest(mute=proto.MuteTrackRequest(sid=sid, muted=m)),
        ids,
        st.booleans(),
    ),
    st.builds(
        lambda sids, s: proto.SignalRequest(
            subscription=proto.UpdateSubscription(track_sids=sids, subscribe=s)
        ),
        st.lists(ids, max_size=3),
        st.booleans(),
    ),
    st.builds(lambda t: proto.SignalRequest(ping=t), st.integers(-(2**63), 2**63 - 1)),
    st.builds(
        lambda t: proto.SignalRequest(ping_req=proto.Ping(timestamp=t)), st.integers(0, 2**62)
    ),
    st.builds(
        lambda m: proto.SignalRequest(update_metadata=proto.UpdateParticipantMetadata(metadata=m)),
        ids,
    ),
    st.just(proto.SignalRequest(sync_state=proto.SyncState())),
    st.just(proto.SignalRequest(leave=proto.LeaveRequest())),
)
frames = st.one_of(
    st.binary(max_size=120),
    st.text(max_size=60),
    requests.map(lambda r: r.SerializeToString()),
    # A valid request cut short: a truncated protobuf.
    st.tuples(requests, st.integers(1, 40)).map(
        lambda t: t[0].SerializeToString()[: max(0, len(t[0].SerializeToString()) - t[1])]
    ),
)
bad_tokens = st.one_of(
    st.text(st.characters(codec="ascii", min_codepoint=33, max_codepoint=126), max_size=80),
    st.builds(lambda i: token(i or "x", "fuzz", secret="the-wrong-secret-0123456789abcdef"), ids),
    st.builds(lambda i: token(i or "x", "fuzz", ttl_s=-120), ids),
    st.builds(lambda i: token(i or "x", "fuzz", grants=api.VideoGrants(room_list=True)), ids),
    st.just(token("x", "fuzz")[:-5]),
)


@pytest_asyncio.fixture
async def server() -> AsyncIterator[sfu.Server]:
    """A real server on a free port (default ping timeout: a busy machine must not drop anyone)."""
    async with sfu.serve(port=0, api_key=API_KEY, api_secret=API_SECRET) as s:
        yield s


async def hit(server: sfu.Server, valid: bool, bad: str, messages: list[bytes | str]) -> None:
    """One fuzz client: join (or try to, with a bad token), send ``messages``, expect an answer."""
    counter = hit.__dict__.setdefault("n", [0])
    counter[0] += 1
    identity = f"fuzzer-{counter[0]}"
    params = {"access_token": token(identity, "fuzz") if valid else bad}
    async with aiohttp.ClientSession() as http:
        try:
            ws = await http.ws_connect(server.url + "/rtc", params=params)
        except aiohttp.WSServerHandshakeError as exc:
            assert not valid
            assert exc.status == 401  # answered: refused with a reason
            return
        assert valid, "a bad token was let in"
        async with ws:
            first = proto.SignalResponse.FromString(await ws.receive_bytes(timeout=scaled(5)))
            assert first.WhichOneof("message") == "join"
            for m in messages:
                if ws.closed:
                    break
                try:
                    if isinstance(m, bytes):
                        await ws.send_bytes(m)
                    else:
                        await ws.send_str(m)
                except ConnectionError:
                    break  # the server closed it: that is an answer too
            # Whatever the server says (answers, or a close), it must not hang on the socket.
            try:
                async with asyncio.timeout(0.2):
                    async for _ in ws:
                        pass
            except TimeoutError:
                pass


@dataclass
class Baseline:
    """A room streaming a tone, and the server's tasks and peers with only that room in it."""

    hears: Listener
    tasks: int
    peers: int
    connections: int


@pytest_asyncio.fixture
async def steady(server: sfu.Server) -> AsyncIterator[Baseline]:
    """Two real SDK participants streaming in another room throughout the fuzzing."""
    async with (
        joined(server.url, "steady-talker", STEADY_ROOM) as talker,
        joined(server.url, "steady-listener", STEADY_ROOM) as listener,
        Listener(listener, "steady-talker") as hears,
        ToneSender(talker, 440.0),
    ):
        # A second of audio heard: the room's setup (ICE, DTLS, the first offers) is over and
        # its tasks with it, so what runs now is what runs for as long as it streams.
        await hears.wait_frames(100, 15)
        yield Baseline(
            hears, len(asyncio.all_tasks()), open_peer_connections(), len(server.hub.connections())
        )


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(valid=st.booleans(), bad=bad_tokens, messages=st.lists(frames, max_size=6))
async def test_garbage_signalling_breaks_nothing(
    server: sfu.Server, steady: Baseline, valid: bool, bad: str, messages: list[bytes | str]
) -> None:
    """Garbage frames, requests out of order, bad tokens: answered or closed, no leak."""
    heard = len(steady.hears.frames)
    await hit(server, valid, bad, messages)
    await until(lambda: len(server.hub.connections()) == steady.connections, 10)
    await until(lambda: len(asyncio.all_tasks()) <= steady.tasks, 10)
    assert open_peer_connections() <= steady.peers
    assert "fuzz" not in server.rooms or not server.rooms["fuzz"].participants
    # The other room still streams: new frames keep arriving.
    await steady.hears.wait_frames(heard + 3, 5)
