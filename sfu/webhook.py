"""Webhooks: livekit-server's room, participant and track events POSTed to configured URLs.

Each event is a ``livekit.WebhookEvent`` in protobuf JSON (camelCase field names, enums by name,
64-bit integers as strings, as Go's protojson writes them), sent with ``Content-Type:
application/webhook+json`` and an ``Authorization`` header holding a JWT signed with the API key
and secret whose ``sha256`` claim is the base64 SHA-256 of the body. That is what
``livekit.api.WebhookReceiver(TokenVerifier(key, secret)).receive(body, auth)`` checks.

:func:`encode` and :func:`sign` do no I/O. :class:`Webhooks` queues events without waiting and
sends them, in order, from one task it owns; a receiver that is slow or down delays only the
events behind it, never the signalling or the media.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import json
import time
import warnings
from collections.abc import Sequence

import aiohttp
import jwt
from google.protobuf import json_format
from livekit import api
from livekit.protocol import models, webhook
from loguru import logger
from yarl import URL

from aiotasks import cancel_and_wait

from .errors import SfuError
from .room import Participant, Room, Track, new_sid

CONTENT_TYPE = "application/webhook+json"
USER_AGENT = "LiveKit"  # what livekit-server sends
TOKEN_TTL = datetime.timedelta(minutes=5)  # livekit-server's validity for a webhook token

# The events livekit-server sends about rooms, participants and tracks.
ROOM_STARTED = "room_started"
ROOM_FINISHED = "room_finished"
PARTICIPANT_JOINED = "participant_joined"
PARTICIPANT_LEFT = "participant_left"
PARTICIPANT_CONNECTION_ABORTED = "participant_connection_aborted"
TRACK_PUBLISHED = "track_published"
TRACK_UNPUBLISHED = "track_unpublished"


def encode(event: webhook.WebhookEvent) -> bytes:
    """The body of a webhook: the event as compact protobuf JSON, UTF-8."""
    fields = json_format.MessageToDict(event)
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()


def sign(body: bytes, api_key: str, api_secret: str) -> str:
    """The ``Authorization`` header value: a JWT carrying the body's base64 SHA-256."""
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    token = api.AccessToken(api_key, api_secret).with_ttl(TOKEN_TTL).with_sha256(digest)
    with warnings.catch_warnings():
        # livekit-server --dev uses the 6-byte secret "secret": accepted, as there.
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
        return token.to_jwt()


def check_url(url: str) -> str:
    """``url`` if it is an absolute http(s) URL; :class:`SfuError` saying why not otherwise."""
    parsed = URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise SfuError(f"webhook URL {url!r}: expected http://HOST[:PORT]/PATH or https://...")
    return url


class Webhooks:
    """Sends webhook events to ``urls`` from one task, in the order they were raised.

    :meth:`notify` never waits: it takes a snapshot of the event and queues it (dropping it,
    with a log line, once ``max_queued`` are waiting). Each POST has ``timeout_s``; a failure
    is one log line and the event is not sent again. With no URL, nothing is queued.
    """

    def __init__(
        self,
        urls: Sequence[str],
        api_key: str,
        api_secret: str,
        *,
        timeout_s: float = 3.0,
        max_queued: int = 1000,
    ) -> None:
        self.urls = [check_url(u) for u in urls]
        self._api_key = api_key
        self._api_secret = api_secret
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._queue: asyncio.Queue[webhook.WebhookEvent] = asyncio.Queue(max_queued)
        self._session: aiohttp.ClientSession | None = None
        self._sender: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the sender task (when there is a URL to send to)."""
        if self.urls and self._sender is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
            self._sender = asyncio.create_task(self._send_all(), name="sfu webhook sender")

    async def close(self, drain_s: float = 2.0) -> None:
        """Send what is queued for up to ``drain_s`` seconds, then stop. Safe to call twice."""
        if self._sender is not None and not self._sender.done():
            try:
                async with asyncio.timeout(drain_s):
                    await self._queue.join()
            except TimeoutError:
                left = self._queue.qsize()
                logger.warning("webhooks: {} events not sent before the server stopped", left)
        sender, self._sender = self._sender, None
        await cancel_and_wait(sender)
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- events -----------------------------------------------------------------------------

    def notify(
        self,
        event: str,
        room: Room,
        participant: models.ParticipantInfo | None = None,
        track: Track | None = None,
    ) -> None:
        """Queue ``event`` about ``room`` (and a participant, a track) as they are now."""
        if self._sender is None:
            return
        message = webhook.WebhookEvent(
            event=event,
            room=room.info(),
            participant=participant,
            track=track.info() if track is not None else None,
            id=new_sid("EV_"),
            created_at=int(time.time()),
        )
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            logger.warning("webhooks: {} queued already, dropped {}", self._queue.qsize(), event)

    def track_event(self, event: str, room: Room, publisher: Participant, track: Track) -> None:
        """Queue a ``track_*`` event; as livekit-server, it names the publisher by sid and
        identity only."""
        who = models.ParticipantInfo(sid=publisher.sid, identity=publisher.identity)
        self.notify(event, room, who, track)

    # -- sending ----------------------------------------------------------------------------

    async def _send_all(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                body = encode(event)
                auth = sign(body, self._api_key, self._api_secret)
                await asyncio.gather(
                    *(self._post(url, event.event, body, auth) for url in self.urls)
                )
            finally:
                self._queue.task_done()

    async def _post(self, url: str, event: str, body: bytes, auth: str) -> None:
        assert self._session is not None
        headers = {
            "Authorization": auth,
            "Content-Type": CONTENT_TYPE,
            "User-Agent": USER_AGENT,
        }
        try:
            async with self._session.post(url, data=body, headers=headers) as response:
                if response.status >= 300:
                    logger.warning("webhook {} to {}: HTTP {}", event, url, response.status)
        except TimeoutError:
            logger.warning(
                "webhook {} to {}: no answer within {} s", event, url, self._timeout.total
            )
        except aiohttp.ClientError as exc:
            logger.warning("webhook {} to {}: {}: {}", event, url, type(exc).__name__, exc)
