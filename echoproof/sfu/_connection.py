"""One client's live connection: its signalling socket, its two peer connections, its tracks.

The handler task that accepted the WebSocket owns the connection: it runs :meth:`Connection.run`,
whose ``finally`` tears everything down. Anyone else ends a connection with
:meth:`Connection.disconnect`, which closes the socket and waits for that teardown. A client that
resumes (``reconnect=1``) hands its new socket to :meth:`Connection.resume`; the owner reads it
from then on, and the handler that accepted it waits until the owner is done with it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web
from aiortc import RTCRtpReceiver
from aiortc.exceptions import InvalidAccessError, InvalidStateError
from google.protobuf.message import DecodeError
from livekit.protocol import models, rtc
from loguru import logger

from echoproof.aiotasks import cancel_and_wait

from . import _signal as sig
from . import datatrack
from .auth import Authenticator
from .errors import ProtocolError
from .hub import Hub
from .media import (
    DATA_TRACK,
    LOSSY,
    RELIABLE,
    AudioOptions,
    ForwardTrack,
    PublisherPeer,
    SubscriberPeer,
    TrackFanout,
)
from .room import DataTrack, Participant, Room, Track
from .settings import Settings
from .webhook import PARTICIPANT_JOINED, TRACK_PUBLISHED, TRACK_UNPUBLISHED, Webhooks

_REASON_NAMES = {v: k for k, v in models.DisconnectReason.items()}


class Connection:
    """A participant's signalling session bound to a WebSocket and two aiortc connections."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        room: Room,
        participant: Participant,
        *,
        hub: Hub[Connection],
        auth: Authenticator,
        webhooks: Webhooks,
        settings: Settings,
        auto_subscribe: bool = True,
    ) -> None:
        self.ws = ws
        self.room = room
        self.participant = participant
        self._hub = hub
        self._auth = auth  # mints the refreshed join tokens
        self._webhooks = webhooks
        self._settings = settings
        self.session = sig.Session(
            room,
            participant,
            ping_interval=settings.ping_interval,
            ping_timeout=settings.ping_timeout,
            auto_subscribe=auto_subscribe,
        )
        self.label = f"{participant.identity}@{room.name}"
        self.publisher = PublisherPeer(f"{self.label} publisher", self._on_track, self._on_data)
        self.subscriber = SubscriberPeer(f"{self.label} subscriber")
        # Tracks this participant publishes, and the copies it receives of others' tracks.
        self.fanouts: dict[str, TrackFanout] = {}
        self.subscriptions: dict[str, tuple[TrackFanout, ForwardTrack]] = {}
        self._denied: set[str] = set()  # tracks whose publisher refused this participant
        self.data_subscriptions = datatrack.Subscriptions()
        self.done = asyncio.Event()
        # Set when the end has a known reason; otherwise the connection was lost.
        self._leave_reason: int | None = None
        self._media_connected = False
        self._closing = False
        # The close frame the socket gets once the room has been told (a protocol error: 1008).
        self._close_code: tuple[int, bytes] = (WSCloseCode.OK, b"")
        self._watchdog: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # Resume: set when a new socket replaces the lost one (or the wait must end); the
        # event of each resumed socket, set once this connection stops reading it; a
        # subscriber offer that found no socket to go out on.
        self._swapped = asyncio.Event()
        self._released: dict[web.WebSocketResponse, asyncio.Event] = {}
        self._undelivered_offer: rtc.SignalResponse | None = None
        self.subscriber.pc.on("connectionstatechange", self._on_subscriber_state)

    def _on_subscriber_state(self) -> None:
        if self.subscriber.pc.connectionState != "connected" or self._closing:
            return
        first = not self._media_connected
        self._media_connected = True
        self.participant.state = models.ParticipantInfo.State.ACTIVE
        info = self.participant.info()
        if first:  # livekit-server: a participant has joined once it is active
            self._webhooks.notify(PARTICIPANT_JOINED, self.room, info)
        # To the others only, as livekit-server does: one about itself reaching an SDK that is
        # disconnecting has cost its leave (its socket reset with the leave unsent).
        update = sig.participant_update([info])
        self._spawn(self._hub.broadcast(self.room, update, exclude=self), "announce active")

    @property
    def media_connected(self) -> bool:
        """Whether the subscriber connection has connected (the participant became active)."""
        return self._media_connected

    def publishes(self, track_sid: str) -> bool:
        """Whether this participant publishes the media track ``track_sid``."""
        return track_sid in self.fanouts

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``coro`` as a task this connection owns (cancelled and awaited at teardown)."""
        task = asyncio.create_task(coro, name=f"{name} {self.label}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- lifetime ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the client until it leaves, vanishes or is disconnected; then tear down.

        A signal connection lost after the media connected is not the end: the participant
        stays, its media flowing, for :data:`~sfu._signal.RESUME_WINDOW_S`, and a resume
        (:meth:`resume`) hands this loop the client's new socket.
        """
        try:
            await self._join()
            self._watchdog = asyncio.create_task(self._watch(), name=f"watchdog {self.label}")
            self._spawn(self._refresh_tokens(), "token refresh")
            while True:
                ws = self.ws
                if await self._serve(ws) or self._closing or not self._media_connected:
                    return
                if self.ws is ws and not await self._await_resume():
                    return
        except ProtocolError as exc:
            logger.warning("{}: closing the signal connection: {}", self.label, exc)
            self._close_code = (WSCloseCode.POLICY_VIOLATION, str(exc)[:120].encode())
        except (ConnectionError, RuntimeError) as exc:
            logger.info("{}: the signal connection broke: {}", self.label, exc)
        except Exception as exc:  # a bug here must end only this participant, not the server
            logger.error("{}: unexpected {}: {}; closing it", self.label, type(exc).__name__, exc)
            logger.opt(exception=exc).debug("details")
            self._close_code = (WSCloseCode.INTERNAL_ERROR, b"")
        finally:
            await self._teardown()

    async def _serve(self, ws: web.WebSocketResponse) -> bool:
        """Handle the client's requests on ``ws`` until it ends; True when the client left."""
        try:
            async for message in ws:
                if message.type in (WSMsgType.BINARY, WSMsgType.TEXT):
                    if await self._handle(message.data):
                        return True
                elif message.type == WSMsgType.ERROR:
                    logger.info("{}: signal connection error: {}", self.label, ws.exception())
                    break
        except (ConnectionError, RuntimeError) as exc:
            logger.info("{}: the signal connection broke: {}", self.label, exc)
        finally:
            released = self._released.pop(ws, None)
            if released is not None:
                released.set()
        return False

    async def _handle(self, frame: bytes | str) -> bool:
        """Carry out one request; True when the client is leaving.

        An answer that cannot be sent ends nothing: a client that closes right after a request
        may have sent its leave too, still unread. Reading on finds it, or the socket's end.
        """
        for action in self.session.receive(frame):
            try:
                if await self._execute(action):
                    return True
            except (ConnectionError, RuntimeError) as exc:
                logger.info("{}: could not answer: {}", self.label, exc)
        return False

    async def _await_resume(self) -> bool:
        """Wait for the client to resume; False when it did not in time."""
        logger.info(
            "{}: signal connection lost; keeping it {} s for a resume",
            self.label,
            sig.RESUME_WINDOW_S,
        )
        self._swapped.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(sig.RESUME_WINDOW_S):
                await self._swapped.wait()
        return not self._closing and not self.ws.closed

    @property
    def resumable(self) -> bool:
        """Whether a client may resume this connection (it is not on its way out)."""
        return self._media_connected and not self._closing

    async def resume(self, ws: web.WebSocketResponse) -> None:
        """Carry on over ``ws``, the resumed client's new socket; returns once this connection
        is done with it (the handler that accepted ``ws`` must keep it open until then)."""
        released = self._released[ws] = asyncio.Event()
        old, self.ws = self.ws, ws
        logger.info("{}: resumed", self.label)
        # The client gave the old socket up: if it still looked open here, end it (and free
        # its handler, should it be a resumed socket the owner never got to read).
        await old.close()
        stale = self._released.pop(old, None)
        if stale is not None:
            stale.set()
        try:
            for response in self.session.resumed():
                await self.send(response)
            offer = self._undelivered_offer
            if offer is not None and await self.send(offer):
                self._undelivered_offer = None
        except (ConnectionError, RuntimeError) as exc:  # the owner finds the socket broken
            logger.info("{}: the resumed signal connection broke at once: {}", self.label, exc)
        self._swapped.set()
        await released.wait()

    async def disconnect(self, reason: int) -> None:
        """Send ``leave`` with ``reason``, close the socket and wait for the teardown."""
        if not self._closing:
            self._leave_reason = reason
            self._closing = True
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.send(sig.leave(reason))
            await self.ws.close()
            self._swapped.set()  # a connection waiting for a resume waits no more
        await self.done.wait()

    async def _watch(self) -> None:
        """Close the socket of a client that has sent nothing (not even a ping) for
        ``ping_timeout``: it is then lost, as if it had dropped."""
        while True:
            await asyncio.sleep(min(1.0, self.session.ping_timeout / 4))
            if not self.ws.closed and self.session.timed_out():
                logger.info(
                    "{}: no message for {} s, closing its signal connection",
                    self.label,
                    self.session.ping_timeout,
                )
                await self.ws.close()

    async def _refresh_tokens(self) -> None:
        """Send a fresh join token every ``token_refresh_interval``, as livekit-server does,
        so that a client still in the room after its first token expired can reconnect."""
        while True:
            await asyncio.sleep(self._settings.token_refresh_interval)
            await self.refresh_token()

    async def refresh_token(self) -> None:
        """Send the client a join token for its participant as it is now: after its name,
        metadata, attributes or grants changed, and periodically."""
        token = self._auth.refreshed(self.room.name, self.participant)
        await self.send(sig.refresh_token(token))

    async def _teardown(self) -> None:
        """End the owned tasks, then leave the room, close the socket, close the peers.

        The release runs even when the handler task is cancelled meanwhile (the cancellation
        propagates after it), so :meth:`disconnect` never waits for ``done`` in vain.
        """
        self._closing = True
        try:
            await cancel_and_wait(*self._tasks, self._watchdog)
        except Exception as exc:  # a bug in a helper task: said here, and the teardown goes on
            logger.error("{}: a task failed: {}: {}", self.label, type(exc).__name__, exc)
            logger.opt(exception=exc).debug("details")
        finally:
            await self._release()

    async def _release(self) -> None:
        if self._leave_reason is None:
            self._leave_reason = sig.lost_reason(self._media_connected)
        reason = self._leave_reason
        try:
            await self._leave_room(reason)
        except Exception as exc:  # finish quietly: the web framework would print a traceback
            logger.warning("{}: error while leaving: {}: {}", self.label, type(exc).__name__, exc)
            logger.opt(exception=exc).debug("details")
        finally:
            await self._close(reason)

    async def _leave_room(self, reason: int) -> None:
        """Take this participant's tracks from the others, then leave: the room is told
        before the client sees its socket close."""
        for data_track in list(self.participant.data_tracks.values()):
            await self._drop_data_track(data_track)
        self.participant.data_tracks.clear()
        for track in list(self.participant.tracks.values()):
            await self.unpublish(track)
        await self._hub.leave(self, reason)

    async def _close(self, reason: int) -> None:
        """Close the socket, then stop forwarding and close the peers; ``done`` is set
        however that went."""
        try:
            code, message = self._close_code
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.close(code=code, message=message)
            for fanout in self.fanouts.values():
                fanout.close()
            for fanout, sink in self.subscriptions.values():
                fanout.unsubscribe(sink)
            self.subscriptions.clear()
            await self.publisher.close()
            await self.subscriber.close()
        except Exception as exc:  # as in _release
            logger.warning("{}: error while closing: {}: {}", self.label, type(exc).__name__, exc)
            logger.opt(exception=exc).debug("details")
        finally:
            for released in self._released.values():
                released.set()
            self.done.set()
            logger.info("{} left ({})", self.label, _REASON_NAMES.get(reason, str(reason)))

    # -- signalling -------------------------------------------------------------------------

    async def send(self, response: rtc.SignalResponse) -> bool:
        """Send one ``SignalResponse``; dropped (False) while the socket is closed."""
        if self.ws.closed:
            return False
        await self.ws.send_bytes(response.SerializeToString())
        return True

    async def _join(self) -> None:
        await self.send(self.session.join_response())
        await self._hub.broadcast(
            self.room, sig.participant_update([self.participant.info()]), exclude=self
        )
        # Tracks already published reach the late joiner in its first offer, before the
        # data channels (see media.SubscriberPeer.open_data_channels).
        await self.resubscribe()
        await self.negotiate()

    async def negotiate(self) -> None:
        """Send a subscriber offer now, or after the one in flight is answered."""
        if self._closing:
            return  # a connection on its way out needs no new offer
        try:
            sdp = await self.subscriber.offer()
        except InvalidStateError:
            return  # its peer connection closed while a room was being torn down

        if sdp is not None:
            offer = self.session.subscriber_offer(sdp)
            try:
                delivered = await self.send(offer)
            except (ConnectionError, RuntimeError):  # the socket broke: as good as closed
                delivered = False
            if not delivered:
                self._undelivered_offer = offer  # sent on resume: the next offer waits for it

    async def _execute(self, action: sig.Action) -> bool:
        """Carry out one action; True when the client is leaving."""
        match action:
            case sig.Send(response):
                await self.send(response)
            case sig.AnswerOffer(sdp, offer_id):
                await self._answer_publisher(sdp, offer_id)
            case sig.AcceptAnswer(sdp):
                again, sent = await self.subscriber.accept_answer(sdp)
                for track_sid in sent:
                    publisher = self._hub.publisher_of(self.room, track_sid)
                    if publisher is not None:
                        await publisher.send(sig.track_subscribed(track_sid))
                if again:
                    await self.negotiate()
            case sig.AddCandidate(target, candidate, mid, index):
                peer = self.publisher if target == sig.PUBLISHER else self.subscriber
                await peer.add_candidate(candidate, mid, index)
            case sig.TrackMuted(track):
                await self._hub.broadcast(
                    self.room, sig.participant_update([self.participant.info()])
                )
                logger.info("{}: track {} muted={}", self.label, track.sid, track.muted)
            case sig.Resubscribe(room=False):
                if await self.resubscribe():
                    await self.negotiate()
            case sig.Resubscribe(room=True):
                for other in self._hub.connections_in(self.room, exclude=self):
                    if await other.resubscribe():
                        await other.negotiate()
            case sig.SubscribeData(track_sid, subscribe):
                await self._subscribe_data(track_sid, subscribe)
            case sig.DataUnpublished(track):
                await self._drop_data_track(track)
            case sig.Announce():
                await self._hub.broadcast(
                    self.room, sig.participant_update([self.participant.info()])
                )
                await self.refresh_token()  # its claims changed
            case sig.Leave(reason):
                self._leave_reason = reason
                self._closing = True
                return True
        return False

    # -- publishing -------------------------------------------------------------------------

    async def _answer_publisher(self, sdp: str, offer_id: int) -> None:
        try:
            answer_sdp, cids = await self.publisher.answer(sdp, self._audio_options)
        except (ValueError, AssertionError, InvalidAccessError, InvalidStateError) as exc:
            raise ProtocolError(f"the publisher offer could not be applied: {exc}") from None
        await self.send(sig.answer(answer_sdp, offer_id))
        published = self.session.negotiated(cids)
        gone = [t for t in self.participant.tracks.values() if t.cid not in cids]
        for track in gone:
            await self.unpublish(track)
        if not published:
            return
        for track in published:
            self._fanout_of(track)
            self._webhooks.track_event(TRACK_PUBLISHED, self.room, self.participant, track)
            logger.info(
                "{}: published {} ({}, {})", self.label, track.sid, track.name, track.mime_type
            )
        await self._hub.broadcast(self.room, sig.participant_update([self.participant.info()]))
        for other in self._hub.connections_in(self.room, exclude=self):
            if await other.resubscribe():
                await other.negotiate()

    def _on_track(self, cid: str, receiver: RTCRtpReceiver) -> None:
        track = self.session.pending.get(cid) or next(
            (t for t in self.participant.tracks.values() if t.cid == cid), None
        )
        if track is None:
            logger.warning("{}: media for track {} that was never announced", self.label, cid)
            return
        self._fanout_of(track).attach(receiver)

    def _fanout_of(self, track: Track) -> TrackFanout:
        """The fanout of ``track``, made on first use, with the codecs its answer settled."""
        fanout = self.fanouts.get(track.sid)
        if fanout is None:
            video = track.type == models.TrackType.VIDEO
            fanout = self.fanouts[track.sid] = TrackFanout(track.sid, "video" if video else "audio")
        codecs = self.publisher.codecs.get(track.cid)
        if codecs:
            fanout.codecs = codecs
            if fanout.kind == "video":
                track.mime_type = codecs[0].mimeType
        return fanout

    def _audio_options(self, cid: str) -> AudioOptions:
        track = self.session.pending.get(cid) or next(
            (t for t in self.participant.tracks.values() if t.cid == cid), None
        )
        if track is None:
            return AudioOptions()
        return AudioOptions(
            dtx=not track.disable_dtx, stereo=track.stereo, red=not track.disable_red
        )

    async def unpublish(self, track: Track) -> None:
        """Remove ``track`` from everyone who receives it and tell the room."""
        if self.participant.tracks.pop(track.sid, None) is not None:
            self._webhooks.track_event(TRACK_UNPUBLISHED, self.room, self.participant, track)
        fanout = self.fanouts.pop(track.sid, None)
        if fanout is not None:
            fanout.close()
        for other in self._hub.connections_in(self.room, exclude=self):
            if await other.drop_subscription(track.sid):
                await other.negotiate()
        await self._hub.broadcast(self.room, sig.participant_update([self.participant.info()]))

    # -- subscribing ------------------------------------------------------------------------

    async def resubscribe(self) -> bool:
        """Receive the tracks this participant wants and may receive, and only those;
        returns whether a subscriber offer is due."""
        due = False
        for publisher in self._hub.connections_in(self.room, exclude=self):
            for track_sid in list(publisher.fanouts):
                wanted = self.session.wants(track_sid) and self.participant.can_subscribe
                allowed = publisher.participant.allows(self.participant, track_sid)
                if wanted and allowed and track_sid not in self.subscriptions:
                    self._subscribe_to(publisher, track_sid)
                    due = True
                elif not (wanted and allowed) and track_sid in self.subscriptions:
                    due = await self.drop_subscription(track_sid) or due
                if wanted and allowed == (track_sid in self._denied):
                    # livekit-server tells a subscriber when a publisher's permission changes.
                    if allowed:
                        self._denied.discard(track_sid)
                    else:
                        self._denied.add(track_sid)
                    update = sig.permission_update(publisher.participant.sid, track_sid, allowed)
                    await self.send(update)
        revoked = False
        for track_sid in list(self.data_subscriptions.by_sid):
            found = self._data_publisher(track_sid)
            if found is None or not (
                self.participant.can_subscribe
                and found[0].participant.allows(self.participant, track_sid)
            ):
                revoked = self.data_subscriptions.remove(track_sid) or revoked
        if revoked:
            await self.send(self.data_subscriptions.handles())
        return due

    def _subscribe_to(self, publisher: Connection, track_sid: str) -> None:
        fanout = publisher.fanouts.get(track_sid)
        if fanout is None or track_sid in self.subscriptions or self._closing:
            return
        impairment = self._settings.impairment_for(
            publisher.participant.identity, self.participant.identity
        )
        sink = fanout.subscribe(impairment)
        self.subscriptions[track_sid] = (fanout, sink)
        self.subscriber.add_track(publisher.participant.sid, sink)

    async def drop_subscription(self, track_sid: str) -> bool:
        """Stop receiving ``track_sid``; returns whether it was received."""
        entry = self.subscriptions.pop(track_sid, None)
        if entry is None:
            return False
        fanout, sink = entry
        fanout.unsubscribe(sink)
        return await self.subscriber.remove_track(track_sid)

    # -- data -------------------------------------------------------------------------------

    def _on_data(self, label: str, data: bytes) -> None:
        if label == DATA_TRACK:
            self._forward_data_track(data)
            return
        if label not in (RELIABLE, LOSSY):
            return
        if not self.participant.can_publish_data:
            logger.warning("{}: data packet without the canPublishData grant, dropped", self.label)
            return
        packet = models.DataPacket()
        try:
            packet.ParseFromString(data)
        except DecodeError:
            logger.warning("{}: a data packet that is not a DataPacket, dropped", self.label)
            return
        packet.participant_identity = self.participant.identity
        packet.participant_sid = self.participant.sid
        destinations = set(packet.destination_identities)
        if packet.HasField("user"):
            packet.user.participant_identity = self.participant.identity
            packet.user.participant_sid = self.participant.sid
            destinations.update(packet.user.destination_identities)
        payload = packet.SerializeToString()
        for other in self._hub.connections_in(self.room, exclude=self):
            if destinations and other.participant.identity not in destinations:
                continue
            other.subscriber.send_data(label, payload)

    # -- data tracks ------------------------------------------------------------------------

    def _forward_data_track(self, packet: bytes) -> None:
        """Relay one data-track packet to each subscriber of its track, under their handle."""
        if not self.participant.can_publish_data:
            logger.debug("{}: data-track packet without the canPublishData grant", self.label)
            return
        header = datatrack.parse_header(packet)
        if header is None or header.version != datatrack.VERSION:
            logger.debug(
                "{}: dropped {} bytes that are no data-track packet", self.label, len(packet)
            )
            return
        track = self.participant.data_tracks.get(header.handle)
        if track is None:
            logger.debug("{}: packet for unpublished data track {}", self.label, header.handle)
            return
        for other in self._hub.connections_in(self.room, exclude=self):
            handle = other.data_subscriptions.by_sid.get(track.sid)
            if handle is not None:
                other.subscriber.send_data(DATA_TRACK, datatrack.with_handle(packet, handle))

    def _data_publisher(self, track_sid: str) -> tuple[Connection, DataTrack] | None:
        """Who publishes the data track ``track_sid`` in this room, and the track."""
        for other in self._hub.connections_in(self.room, exclude=self):
            for track in other.participant.data_tracks.values():
                if track.sid == track_sid:
                    return other, track
        return None

    async def _subscribe_data(self, track_sid: str, subscribe: bool) -> None:
        """Start or stop receiving a data track; the client learns its handles in full."""
        if not subscribe:
            if self.data_subscriptions.remove(track_sid):
                await self.send(self.data_subscriptions.handles())
            return
        found = self._data_publisher(track_sid)
        if found is None:
            logger.info(
                "{}: asked for data track {}, which nobody publishes", self.label, track_sid
            )
            return
        publisher, _ = found
        if not (
            self.participant.can_subscribe
            and publisher.participant.allows(self.participant, track_sid)
        ):
            await self.send(sig.permission_update(publisher.participant.sid, track_sid, False))
            return
        owner = publisher.participant
        self.data_subscriptions.add(owner.identity, owner.sid, track_sid)
        await self.send(self.data_subscriptions.handles())

    async def _drop_data_track(self, track: DataTrack) -> None:
        """``track`` is gone: whoever received it stops, and is told its remaining handles."""
        for other in self._hub.connections_in(self.room, exclude=self):
            if other.data_subscriptions.remove(track.sid):
                with contextlib.suppress(ConnectionError, RuntimeError):  # it may be leaving too
                    await other.send(other.data_subscriptions.handles())
