"""Webhooks: livekit-server's room, participant and track events POSTed to configured URLs.

Each event is a ``livekit.WebhookEvent`` in protobuf JSON (camelCase field names, enums by name,
64-bit integers as strings, as Go's protojson writes them), sent with ``Content-Type:
application/webhook+json`` and an ``Authorization`` header holding a JWT signed with the API key
and secret whose ``sha256`` claim is the base64 SHA-256 of the body. That is what
``livekit.api.WebhookReceiver(TokenVerifier(key, secret)).receive(body, auth)`` checks.

:func:`encode` and :func:`sign` do no I/O. :class:`Webhooks` queues events without waiting and
sends them in order, from one task per URL that it owns; a receiver that is slow or down delays
only the events behind it for that URL, never the signalling, the media or the other URLs.
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
from livekit.protocol import models, webhook
from loguru import logger
from yarl import URL

from echoproof.aiotasks import cancel_and_wait

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
    """The ``Authorization`` header value: an HS256 JWT with livekit-server's claims for a
    webhook (``iss`` the API key, ``iat``/``nbf`` now, ``exp`` in 5 minutes, ``sha256`` the
    base64 SHA-256 of ``body``), sent bare, without "Bearer"."""
    now = int(time.time())
    claims = {
        "iss": api_key,
        "iat": now,
        "nbf": now,
        "exp": now + int(TOKEN_TTL.total_seconds()),
        "sha256": base64.b64encode(hashlib.sha256(body).digest()).decode(),
    }
    with warnings.catch_warnings():
        # livekit-server --dev uses the 6-byte secret "secret": accepted, as there.
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
        return jwt.encode(claims, api_secret, algorithm="HS256")


def check_url(url: str) -> str:
    """``url`` if it is an absolute http(s) URL; :class:`SfuError` saying why not otherwise."""
    parsed = URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise SfuError(f"webhook URL {url!r}: expected http://HOST[:PORT]/PATH or https://...")
    return url


class Webhooks:
    """Sends webhook events to ``urls``, to each in the order they were raised.

    :meth:`notify` never waits: it takes a snapshot of the event and queues it for each URL.
    Each URL has its own queue and sender task, so a receiver that is slow or down delays only
    its own events. Each POST has ``timeout_s``; a failure is one log line and the event is not
    sent again; once ``max_queued`` events wait for a URL, new ones are dropped (with a log
    line). With no URL, nothing is queued.
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
        self._max_queued = max_queued
        self._queues: dict[str, asyncio.Queue[webhook.WebhookEvent]] = {}
        self._senders: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None

    def start(self) -> None:
        """Start one sender task per URL."""
        if not self.urls or self._session is not None:
            return
        self._session = aiohttp.ClientSession(timeout=self._timeout)
        for url in self.urls:
            queue = self._queues[url] = asyncio.Queue(self._max_queued)
            task = asyncio.create_task(self._send_all(url, queue), name=f"sfu webhook to {url}")
            self._senders.append(task)

    async def close(self, drain_s: float = 2.0) -> None:
        """Send what is queued for up to ``drain_s`` seconds, then stop. Safe to call twice."""
        queues, self._queues = self._queues, {}
        try:
            async with asyncio.timeout(drain_s):
                await asyncio.gather(*(q.join() for q in queues.values()))
        except TimeoutError:
            for url, queue in queues.items():
                if queue.qsize():
                    logger.warning("webhooks: {} events for {} not sent", queue.qsize(), url)
        senders, self._senders = self._senders, []
        await cancel_and_wait(*senders)
        if self._session is not None:
            await self._session.close()

    # -- events -----------------------------------------------------------------------------

    def notify(
        self,
        event: str,
        room: Room,
        participant: models.ParticipantInfo | None = None,
        track: Track | None = None,
    ) -> None:
        """Queue ``event`` about ``room`` (and a participant, a track) as they are now."""
        if not self._queues:
            return
        message = webhook.WebhookEvent(
            event=event,
            room=room.info(),
            participant=participant,
            track=track.info() if track is not None else None,
            id=new_sid("EV_"),
            created_at=int(time.time()),
        )
        for url, queue in self._queues.items():
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:
                logger.warning(
                    "webhooks: {} events wait for {}; dropped {}", queue.qsize(), url, event
                )

    def track_event(self, event: str, room: Room, publisher: Participant, track: Track) -> None:
        """Queue a ``track_*`` event; as livekit-server, it names the publisher by sid and
        identity only."""
        who = models.ParticipantInfo(sid=publisher.sid, identity=publisher.identity)
        self.notify(event, room, who, track)

    # -- sending ----------------------------------------------------------------------------

    async def _send_all(self, url: str, queue: asyncio.Queue[webhook.WebhookEvent]) -> None:
        while True:
            event = await queue.get()
            try:
                body = encode(event)
                await self._post(
                    url, event.event, body, sign(body, self._api_key, self._api_secret)
                )
            finally:
                queue.task_done()

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
