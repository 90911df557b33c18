"""Rooms and tokens on a LiveKit server, for benchmarks that add a participant of their own to a
conversation (the pipeline's own helpers are private to it)."""

from __future__ import annotations

import asyncio
import contextlib
import warnings
from datetime import timedelta

import aiohttp
from jwt.warnings import InsecureKeyLengthWarning
from livekit import api
from loguru import logger

from pipeline.config import Config
from pipeline.run import run_bound_s


def _sign(token: api.AccessToken) -> str:
    with warnings.catch_warnings():
        # The embedded server's default secret ("secret") is short; PyJWT warns about every token.
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return token.to_jwt()


def server_api(config: Config) -> api.LiveKitAPI:
    """The server API of `config`'s server, with a token that may create and delete rooms."""
    grants = api.VideoGrants(room_create=True)
    token = _sign(api.AccessToken(config.api_key, config.api_secret).with_grants(grants))
    timeout = aiohttp.ClientTimeout(total=config.connect_timeout_s)
    return api.LiveKitAPI.with_token(token, config.http_url, timeout=timeout)


def join_token(config: Config, room: str, identity: str, name: str) -> str:
    """A token to join `room`, publish and subscribe, valid for as long as a run can last."""
    grants = api.VideoGrants(room_join=True, room=room, can_publish=True, can_subscribe=True)
    token = (
        api.AccessToken(config.api_key, config.api_secret)
        .with_identity(identity)
        .with_name(name)
        .with_grants(grants)
        .with_ttl(timedelta(seconds=run_bound_s(config) + 600))
    )
    return _sign(token)


async def delete_rooms(config: Config, names: list[str]) -> None:
    """Remove the rooms; best effort, a server that already closed them is fine."""
    try:
        async with asyncio.timeout(config.connect_timeout_s), server_api(config) as lk:
            for name in names:
                with contextlib.suppress(api.TwirpError):
                    await lk.room.delete_room(api.DeleteRoomRequest(room=name))
    except (TimeoutError, aiohttp.ClientError) as exc:
        logger.debug("could not delete the rooms: {}", exc)
