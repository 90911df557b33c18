"""A stock livekit-agents worker (examples/reply_agent.py, in the agents' venv) against the
embedded server: registration on /agent, dispatch (explicit, by token, by default), the agent's
kind, and an utterance heard and answered."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from livekit import api, rtc

from echoproof import sfu
from tests.echoproof.sfu._agents import AGENT_NAME, Utterance, agents_in, reply_worker
from tests.echoproof.sfu._clients import (
    API_KEY,
    API_SECRET,
    Listener,
    holds_tone,
    peak_hz,
    token,
    until,
)

REPLY_HZ = 550.0
SILENCE_S = 0.3  # the agent's end-of-utterance silence window (its default)


def customer_token(room: str, agents: list[str] | None = None) -> str:
    """A join token; ``agents`` names the agents its room configuration dispatches."""
    t = api.AccessToken(API_KEY, API_SECRET).with_identity("customer").with_name("customer")
    t = t.with_grants(api.VideoGrants(room_join=True, room=room))
    if agents is not None:
        config = api.RoomConfiguration(
            agents=[api.RoomAgentDispatch(agent_name=name) for name in agents]
        )
        t = t.with_room_config(config)
    return t.to_jwt()


async def connect(server: sfu.Server, jwt: str) -> rtc.Room:
    room = rtc.Room()
    await room.connect(server.url, jwt)
    return room


def heard_tone_at(listener: Listener, freq_hz: float, after: float) -> float | None:
    """When (monotonic) the first frame carrying ``freq_hz`` arrived after ``after``."""
    for t, frame in zip(listener.times, listener.frames, strict=False):
        if t > after and holds_tone(frame, freq_hz):
            return t
    return None


async def test_explicit_dispatch_agent_hears_and_answers(
    server: sfu.Server, tmp_path: Path
) -> None:
    """CreateDispatch sends the worker the room; its agent joins as AGENT (beyond the room's
    max_participants), answers an utterance after its silence window and delay, and
    DeleteDispatch takes it out again."""
    delay_s = 0.4
    async with (
        reply_worker(server, tmp_path / "worker.log", ECHOPROOF_REPLY_DELAY_MS="400") as worker,
        api.LiveKitAPI(server.url, API_KEY, API_SECRET) as lk,
    ):
        await lk.room.create_room(api.CreateRoomRequest(name="support", max_participants=1))
        made = await lk.agent_dispatch.create_dispatch(
            api.CreateAgentDispatchRequest(agent_name=AGENT_NAME, room="support")
        )
        assert made.id.startswith("AD_") and made.agent_name == AGENT_NAME
        customer = await connect(server, customer_token("support"))
        try:
            await until(lambda: bool(agents_in(customer)), 30)
            agent = agents_in(customer)[0]
            assert agent.identity.startswith("agent-AJ_")
            assert agent.attributes["lk.agent_name"] == AGENT_NAME
            (listed,) = [
                d for d in await lk.agent_dispatch.list_dispatch("support") if d.id == made.id
            ]
            (job,) = listed.state.jobs
            assert job.state.participant_identity == agent.identity
            assert job.state.worker_id in server.agents.workers
            # the agent neither took the room's one seat nor was refused for it
            with pytest.raises(rtc.ConnectError, match="room support is full"):
                await connect(server, token("second", "support"))

            async with Listener(customer, agent.identity) as heard, Utterance(customer) as voice:
                await heard.subscribed.wait()
                agent_conn = server.connection("support", agent.identity)
                assert agent_conn is not None
                # the agent subscribes to the customer's voice before the customer speaks
                await until(lambda: any(s for s in agent_conn.subscriptions), 15)
                await heard.wait_frames(50, 10)
                voice.say(0.5)
                await until(lambda: bool(voice.spoken), 5)
                _, spoke_until = voice.spoken[0]
                await until(lambda: heard_tone_at(heard, REPLY_HZ, spoke_until) is not None, 10)
                reply_at = heard_tone_at(heard, REPLY_HZ, spoke_until)
                assert reply_at is not None
                # the reply's frames, not only its first, are heard before the listener ends
                await heard.wait_frames(heard.times.index(reply_at) + 20, 5)
            assert reply_at is not None
            response = reply_at - spoke_until
            # never before the end-of-utterance window and the delay have passed (less a frame)
            assert response >= SILENCE_S + delay_s - 0.01, worker.output()
            start = heard.times.index(reply_at)
            assert abs(peak_hz(heard.frames[start + 2 : start + 20]) - REPLY_HZ) < 5
            assert not any(holds_tone(f, REPLY_HZ) for f in heard.frames[: start - 1])
            (reply,) = worker.replies()
            assert reply["reply_ns"] - reply["detected_ns"] >= delay_s * 1e9
            # the reply was heard after the agent sent it, across the two processes' clocks
            assert 0 < reply_at * 1e9 - reply["reply_ns"] < 2e9

            deleted = await lk.agent_dispatch.delete_dispatch(made.id, "support")
            assert deleted.id == made.id
            await until(lambda: not agents_in(customer), 15)
            remaining = await lk.agent_dispatch.list_dispatch("support")
            assert made.id not in [d.id for d in remaining]
        finally:
            await customer.disconnect()


async def test_token_room_config_dispatches_named_agent(server: sfu.Server, tmp_path: Path) -> None:
    """A join token's roomConfig.agents dispatches the named agent into the room it creates;
    a room that names no agent gets only the default dispatch, which a named worker never takes."""
    async with (
        reply_worker(server, tmp_path / "worker.log"),
        api.LiveKitAPI(server.url, API_KEY, API_SECRET) as lk,
    ):
        lobby = await connect(server, customer_token("lobby"))
        customer = await connect(server, customer_token("booked", agents=[AGENT_NAME]))
        try:
            await until(lambda: bool(agents_in(customer)), 30)
            (dispatch,) = await lk.agent_dispatch.list_dispatch("booked")
            assert dispatch.agent_name == AGENT_NAME
            assert [j.state.participant_identity for j in dispatch.state.jobs] == [
                agents_in(customer)[0].identity
            ]
            (default,) = await lk.agent_dispatch.list_dispatch("lobby")
            assert default.agent_name == "" and not default.state.jobs
            assert not agents_in(lobby)
        finally:
            await customer.disconnect()
            await lobby.disconnect()


async def test_nameless_worker_gets_default_dispatch(server: sfu.Server, tmp_path: Path) -> None:
    """A worker registered without an agent name is sent every new room that names no agent,
    and the agent leaves with the room when the last participant does."""
    async with reply_worker(server, tmp_path / "worker.log", agent_name=""):
        customer = await connect(server, customer_token("walk-in"))
        try:
            await until(lambda: bool(agents_in(customer)), 30)
            (agent,) = agents_in(customer)
            assert agent.attributes["lk.agent_name"] == ""
        finally:
            await customer.disconnect()
        # agents do not keep a room open: it closes, and its agent is disconnected
        await until(lambda: "walk-in" not in server.rooms, 10)
        await until(lambda: server.connection("walk-in", agent.identity) is None, 10)


async def test_silent_agent_then_crash(server: sfu.Server, tmp_path: Path) -> None:
    """ECHOPROOF_REPLY_MODE=silent hears but never answers; ECHOPROOF_REPLY_CRASH_AFTER_S ends
    the agent's job process abruptly, and its job is reported FAILED."""
    async with (
        reply_worker(
            server,
            tmp_path / "worker.log",
            ECHOPROOF_REPLY_MODE="silent",
            ECHOPROOF_REPLY_CRASH_AFTER_S="6",
        ) as worker,
        api.LiveKitAPI(server.url, API_KEY, API_SECRET) as lk,
    ):
        customer = await connect(server, customer_token("mute", agents=[AGENT_NAME]))
        try:
            await until(lambda: bool(agents_in(customer)), 30)
            (agent,) = agents_in(customer)
            async with Listener(customer, agent.identity) as heard, Utterance(customer) as voice:
                await heard.subscribed.wait()
                await heard.wait_frames(50, 10)
                voice.say(0.5)
                await until(lambda: "utterance (not answered)" in worker.output(), 10)
                assert not any(holds_tone(f, REPLY_HZ, 0.01) for f in heard.frames)
            await until(lambda: not agents_in(customer), 30)
            (dispatch,) = await lk.agent_dispatch.list_dispatch("mute")
            (job,) = dispatch.state.jobs
            assert job.state.status == api.JobStatus.JS_FAILED
        finally:
            await customer.disconnect()


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "no access token"),
        ({"Authorization": "Basic abc"}, "invalid authorization header"),
        (
            {
                "Authorization": "Bearer "
                + token("w", "r", secret="another-secret-0123456789abcdef-xyz")
            },
            "signature does not match",
        ),
        ({"Authorization": "Bearer " + token("w", "r")}, "no agent grant"),
    ],
)
async def test_agent_socket_refuses_bad_tokens(
    server: sfu.Server, headers: dict[str, str], reason: str
) -> None:
    """/agent answers 401 with the reason, before any upgrade, to a token without the agent
    grant or none at all; nothing is registered."""
    url = server.url + "/agent"
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(url, headers=headers)
        assert refused.value.status == 401
        async with http.get(url.replace("ws://", "http://"), headers=headers) as plain:
            assert plain.status == 404  # not an upgrade: livekit-server's answer
        upgrade = {**headers, "Connection": "Upgrade", "Upgrade": "websocket"}
        upgrade |= {"Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
        async with http.get(url.replace("ws://", "http://"), headers=upgrade) as answer:
            assert answer.status == 401
            assert reason in await answer.text()
    assert not server.agents.workers
