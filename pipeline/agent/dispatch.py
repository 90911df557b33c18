"""Dispatching the agent under test into a run's room, through the server's AgentDispatchService.

The same calls livekit-server and LiveKit Cloud answer: `CreateDispatch` names the agent and the
room; a worker registered under that name takes the job and its agent joins the room. The run
then waits, bounded, for that participant (see `pipeline.agent.conversation`); `DeleteDispatch`
removes the dispatch at the end, best effort.
"""

from __future__ import annotations

import asyncio

import aiohttp
from livekit import api
from loguru import logger

from pipeline.config import Config
from pipeline.errors import ConnectError
from pipeline.rooms import room_admin_client


async def create_dispatch(config: Config, room: str, agent_name: str) -> str:
    """Dispatch `agent_name` into `room`; the dispatch's id. ConnectError says why not."""
    where = config.http_url
    try:
        async with asyncio.timeout(config.connect_timeout_s), room_admin_client(config, room) as lk:
            dispatch = await lk.agent_dispatch.create_dispatch(
                api.CreateAgentDispatchRequest(agent_name=agent_name, room=room)
            )
    except TimeoutError:
        raise ConnectError(
            f"the LiveKit server at {where} did not answer the agent dispatch within "
            f"{config.connect_timeout_s:g} s."
        ) from None
    except aiohttp.ClientError as exc:
        raise ConnectError(
            f"the LiveKit server at {where} failed the agent dispatch request ({exc})."
        ) from None
    except api.TwirpError as exc:
        raise ConnectError(
            f"the LiveKit server at {where} refused to dispatch agent {agent_name!r} "
            f"(HTTP {exc.status} {exc.code}: {exc.message})."
        ) from None
    logger.info("dispatched agent {} into {} (dispatch {})", agent_name, room, dispatch.id)
    return str(dispatch.id)


async def delete_dispatch(config: Config, room: str, dispatch_id: str) -> None:
    """Remove the dispatch again; best effort (the room may be gone already)."""
    try:
        async with asyncio.timeout(config.connect_timeout_s), room_admin_client(config, room) as lk:
            await lk.agent_dispatch.delete_dispatch(dispatch_id, room)
    except (TimeoutError, aiohttp.ClientError, api.TwirpError) as exc:
        logger.debug("could not delete dispatch {}: {}", dispatch_id, exc)
