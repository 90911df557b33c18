"""The rooms of a run and the tokens to join them, through the server API.

`create_rooms` makes one room per conversation before anyone joins (`ConnectError` says why the
server could not: unreachable, credentials refused, a failed request); `delete_rooms` removes them
again, best effort. `token` signs each speaker's join token; every token is signed here, once, so
that the SDK never signs one itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import warnings
from datetime import timedelta

import aiohttp
from jwt.warnings import InsecureKeyLengthWarning
from livekit import api
from loguru import logger

from pipeline.bounds import agent_wait_s, run_bound_s
from pipeline.config import Config
from pipeline.errors import ConnectError


def room_name(run_id: str) -> str:
    """The room of run `run_id`: `echoproof-<run id>`."""
    return f"echoproof-{run_id}"


def client(config: Config) -> api.LiveKitAPI:
    """A server API client whose one token may create and delete rooms."""
    # A token of our own (room_create covers create and delete) rather than key and secret, so the
    # SDK does not sign tokens itself: signing is done once, in _sign.
    grants = api.VideoGrants(room_create=True)
    signed = _sign(api.AccessToken(config.api_key, config.api_secret).with_grants(grants))
    timeout = aiohttp.ClientTimeout(total=config.connect_timeout_s)
    return api.LiveKitAPI.with_token(signed, config.http_url, timeout=timeout)


def room_admin_client(config: Config, room: str) -> api.LiveKitAPI:
    """A server API client whose one token administers `room` (agent dispatch needs that)."""
    grants = api.VideoGrants(room_admin=True, room=room)
    signed = _sign(api.AccessToken(config.api_key, config.api_secret).with_grants(grants))
    timeout = aiohttp.ClientTimeout(total=config.connect_timeout_s)
    return api.LiveKitAPI.with_token(signed, config.http_url, timeout=timeout)


def _sign(token: api.AccessToken) -> str:
    with warnings.catch_warnings():
        # The embedded server's default secret ("secret") is short; PyJWT warns about every token.
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return token.to_jwt()


async def create_rooms(config: Config, names: list[str]) -> None:
    """Create every room through the server API; ConnectError says why the server could not."""
    where = config.http_url
    try:
        async with asyncio.timeout(config.connect_timeout_s), client(config) as lk:
            for name in names:
                await lk.room.create_room(
                    api.CreateRoomRequest(
                        name=name,
                        # an agent's worker may take a while to register before anyone joins
                        empty_timeout=int(config.connect_timeout_s + agent_wait_s(config)) + 30,
                        departure_timeout=10,
                        max_participants=2,
                    )
                )
    except TimeoutError:
        raise ConnectError(
            f"the LiveKit server at {where} did not answer within {config.connect_timeout_s:g} s; "
            "check livekit.url and that the server is running."
        ) from None
    except aiohttp.ClientConnectorError as exc:
        raise ConnectError(
            f"could not reach the LiveKit server at {where} ({exc.strerror or exc.os_error}); "
            "check livekit.url and that the server is running."
        ) from None
    except aiohttp.ClientError as exc:
        raise ConnectError(f"the LiveKit server at {where} failed the request ({exc}).") from None
    except api.TwirpError as exc:
        if exc.status in (401, 403):
            raise ConnectError(
                f"the LiveKit server at {where} refused the API key and secret "
                f"(HTTP {exc.status}); "
                "check livekit.api_key and livekit.api_secret (or LIVEKIT_API_KEY and "
                "LIVEKIT_API_SECRET)."
            ) from None
        raise ConnectError(
            f"the LiveKit server at {where} could not create the room "
            f"(HTTP {exc.status} {exc.code}: {exc.message})."
        ) from None


async def delete_rooms(config: Config, names: list[str]) -> None:
    """Remove the rooms again; best effort, a server that already closed them is fine."""
    try:
        async with asyncio.timeout(config.connect_timeout_s), client(config) as lk:
            for name in names:
                with contextlib.suppress(api.TwirpError):
                    await lk.room.delete_room(api.DeleteRoomRequest(room=name))
    except (TimeoutError, aiohttp.ClientError) as exc:
        logger.debug("could not delete the rooms: {}", exc)


def token(config: Config, room: str, identity: str, name: str) -> str:
    """A token for `identity` to join `room`, valid for the whole run (`run_bound_s`)."""
    grants = api.VideoGrants(room_join=True, room=room, can_publish=True, can_subscribe=True)
    ttl = timedelta(seconds=run_bound_s(config) + 600)
    return _sign(
        api.AccessToken(config.api_key, config.api_secret)
        .with_identity(identity)
        .with_name(name)
        .with_grants(grants)
        .with_ttl(ttl)
    )
