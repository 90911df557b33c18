"""Media: the two aiortc peer connections of a participant and the Opus forwarding path.

Forwarding never decodes: a tap on the publisher-side ``RTCRtpReceiver`` takes each RTP packet's
Opus payload before aiortc's jitter buffer, and a :class:`TrackFanout` hands it to one
:class:`ForwardTrack` per subscriber. Each ForwardTrack owns its own queue and its ``recv()``
returns ``av.Packet``s that aiortc's ``RTCRtpSender`` packetizes as they are, so a later stage can
hold or drop packets per forwarded stream without touching the others. RTCP keeps running because
the original receive path still sees every packet; only aiortc's decoder thread is stopped.

aiortc numbers the packets it sends consecutively, so a packet the impairment drops would leave no
trace in the receiver's RTP statistics. Each subscriber connection therefore renumbers outgoing
RTP on its transport (:func:`_renumber_rtp`): every packet dropped before a forwarded one moves
that stream's sequence numbers on by one, and the receiver counts the gap as packets lost, as it
would on a lossy network.
"""

from __future__ import annotations

import asyncio
import collections
import fractions
import ipaddress
import time
from collections.abc import Callable
from typing import Any

import av
import ifaddr
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.exceptions import InvalidAccessError, InvalidStateError
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtp import RtpPacket
from aiortc.sdp import SessionDescription, candidate_from_sdp
from loguru import logger

from .errors import HostNetworkError, ProtocolError
from .impairment import Impairment, Schedule

OPUS_TIME_BASE = fractions.Fraction(1, 48000)
# A subscriber that stops reading loses the oldest packets beyond this (10 s of 20 ms packets).
FORWARD_QUEUE_PACKETS = 500

RELIABLE = "_reliable"
LOSSY = "_lossy"


def host_addresses() -> list[str]:
    """The non-loopback IPv4 addresses of this host, where WebRTC can gather ICE candidates."""
    found = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str) and not ipaddress.ip_address(ip.ip).is_loopback:
                found.append(ip.ip)
    return found


NO_HOST_NETWORK = (
    "this host has no non-loopback network interface, so WebRTC clients (libwebrtc in the "
    "LiveKit SDK) cannot gather ICE candidates and no media can flow; add one (any address, "
    "even without outside connectivity), signalling may still use ws://127.0.0.1"
)


def check_host_network(addresses: list[str] | None = None) -> None:
    """Raise :class:`HostNetworkError` when no non-loopback IPv4 address exists.

    ``addresses`` defaults to :func:`host_addresses`.
    """
    if not (host_addresses() if addresses is None else addresses):
        raise HostNetworkError(NO_HOST_NETWORK)


class ForwardTrack(MediaStreamTrack):
    """One subscriber's copy of a published track: Opus payloads out as ``av.Packet``s.

    With a :class:`~sfu.impairment.Schedule`, each packet is dropped or held until its release
    time; without one, it is released as soon as it arrives.
    """

    kind = "audio"

    def __init__(
        self,
        track_sid: str,
        max_packets: int = FORWARD_QUEUE_PACKETS,
        schedule: Schedule | None = None,
    ) -> None:
        super().__init__()
        self.track_sid = track_sid
        self.schedule = schedule
        # (payload, RTP timestamp, release time on the monotonic clock, drops just before it)
        self._packets: collections.deque[tuple[bytes, int, float, int]] = collections.deque(
            maxlen=max_packets
        )
        self._gap = 0  # packets dropped since the last one queued
        # RTP sequence numbers to skip before the packet recv() returned last (see _renumber_rtp).
        self.sequence_skip = 0
        self._ready = asyncio.Event()
        self._pulling = False
        self.forwarded = 0
        self.dropped = 0

    @property
    def id(self) -> str:
        """The msid track id the subscriber sees: the track sid."""
        return self.track_sid

    def push(self, payload: bytes, timestamp: int) -> None:
        """Queue one Opus payload with its RTP timestamp; never blocks."""
        # Before the sender pulls (negotiation not done) packets would only add latency.
        if not self._pulling or self.readyState != "live":
            return
        now = time.monotonic()
        release = now if self.schedule is None else self.schedule.admit(now)
        if release is None:
            self._gap += 1
            return
        if len(self._packets) == self._packets.maxlen:
            self.dropped += 1
        self._packets.append((payload, timestamp, release, self._gap))
        self._gap = 0
        self._ready.set()

    async def recv(self) -> av.Packet:
        """The next payload as an ``av.Packet`` whose pts is the publisher's RTP timestamp."""
        self._pulling = True
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            if not self._packets:
                self._ready.clear()
                await self._ready.wait()
                continue
            # Releases never go backwards, so the head is always the first packet due.
            hold = self._packets[0][2] - time.monotonic()
            if hold <= 0:
                break
            await asyncio.sleep(hold)
        payload, timestamp, _, gap = self._packets.popleft()
        self.sequence_skip += gap
        packet = av.Packet(payload)
        packet.pts = timestamp
        packet.time_base = OPUS_TIME_BASE
        self.forwarded += 1
        return packet

    def stop(self) -> None:
        """End the track; a waiting ``recv()`` raises ``MediaStreamError``."""
        super().stop()
        self._ready.set()


class TrackFanout:
    """The RTP tap of one published track and the subscribers' copies it feeds."""

    def __init__(self, track_sid: str) -> None:
        self.track_sid = track_sid
        self.sinks: set[ForwardTrack] = set()
        self.packets = 0

    def attach(self, receiver: RTCRtpReceiver) -> None:
        """Tap ``receiver``'s RTP before aiortc's jitter buffer and silence its decoder."""
        handle = receiver._handle_rtp_packet
        receive = receiver.receive

        async def tapped(packet: RtpPacket, arrival_time_ms: int) -> None:
            if packet.payload:
                self.feed(packet.payload, packet.timestamp)
            await handle(packet, arrival_time_ms)  # statistics and RTCP reports

        async def receive_without_decoder(parameters: Any) -> None:
            await receive(parameters)
            # No one reads the decoded audio: stop the decoder thread instead of letting it
            # fill the remote track's queue. Name-mangled, so reached by its mangled name.
            receiver._RTCRtpReceiver__stop_decoder()  # type: ignore[attr-defined]

        receiver._handle_rtp_packet = tapped  # type: ignore[method-assign]
        receiver.receive = receive_without_decoder  # type: ignore[method-assign]

    def feed(self, payload: bytes, timestamp: int) -> None:
        """Hand one payload to every subscriber."""
        self.packets += 1
        for sink in self.sinks:
            sink.push(payload, timestamp)

    def subscribe(self, impairment: Impairment | None = None) -> ForwardTrack:
        """A new subscriber's copy of this track, impaired as given."""
        schedule = Schedule(impairment) if impairment and not impairment.is_none else None
        sink = ForwardTrack(self.track_sid, schedule=schedule)
        self.sinks.add(sink)
        return sink

    def unsubscribe(self, sink: ForwardTrack) -> None:
        """Stop feeding ``sink`` and end it."""
        self.sinks.discard(sink)
        sink.stop()

    def close(self) -> None:
        """End every subscriber's copy (the publisher is gone)."""
        for sink in list(self.sinks):
            self.unsubscribe(sink)


def _renumber_rtp(transport: Any, tracks: dict[int, ForwardTrack]) -> None:
    """Make ``transport`` add each track's ``sequence_skip`` to its outgoing RTP (by SSRC).

    The sender awaits each packet's send before it pulls the next, so the skip read here is the
    one that belongs to this packet. RTCP and other SSRCs pass unchanged.
    """
    if getattr(transport, "_echoproof_renumbered", False):
        return
    send = transport._send_rtp

    async def send_renumbered(data: bytes) -> None:
        if len(data) >= 12 and not 192 <= data[1] <= 223:  # RTCP types 192-223 (RFC 5761)
            track = tracks.get(int.from_bytes(data[8:12], "big"))
            if track is not None and track.sequence_skip:
                seq = (int.from_bytes(data[2:4], "big") + track.sequence_skip) & 0xFFFF
                data = data[:2] + seq.to_bytes(2, "big") + data[4:]
        await send(data)

    transport._send_rtp = send_renumbered
    transport._echoproof_renumbered = True


def _config() -> RTCConfiguration:
    # No ICE servers: aiortc would otherwise reach out to a public STUN server.
    return RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)


def _local_only(sdp: str) -> str:
    """``sdp`` without IPv6 candidates, so media stays on this host's IPv4 addresses."""
    kept = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            parts = line.split()
            if len(parts) > 4 and ":" in parts[4]:
                continue
        kept.append(line)
    return "\r\n".join(kept) + "\r\n"


class _Peer:
    """What both connections share: the pc, buffered remote candidates, a safe close."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.pc = RTCPeerConnection(_config())
        self._candidates: list[tuple[str, str | None, int | None]] = []
        self._closed = False  # set at once by close(), which then may take a while
        self._closing: asyncio.Future[None] | None = None  # done once the close has ended

        @self.pc.on("connectionstatechange")
        def on_state() -> None:
            state = self.pc.connectionState
            logger.debug("{} connection {}", self.label, state)
            if state == "failed" and not host_addresses():
                logger.error("{} connection failed: {}", self.label, NO_HOST_NETWORK)

    async def add_candidate(self, candidate: str, mid: str | None, index: int | None) -> None:
        """Add a remote candidate now, or once the remote description is set."""
        if self.pc.remoteDescription is None:
            self._candidates.append((candidate, mid, index))
            return
        await self._add(candidate, mid, index)

    async def _flush_candidates(self) -> None:
        pending, self._candidates = self._candidates, []
        for candidate, mid, index in pending:
            await self._add(candidate, mid, index)

    async def _add(self, candidate: str, mid: str | None, index: int | None) -> None:
        text = candidate.removeprefix("candidate:")
        parts = text.split()
        # Only UDP host/srflx on IPv4: never resolve mDNS names or reach other addresses.
        if len(parts) < 8 or parts[2].lower() != "udp" or ":" in parts[4]:
            return
        if parts[4].endswith(".local"):
            return
        ice = candidate_from_sdp(text)
        ice.sdpMid = mid
        ice.sdpMLineIndex = index
        if mid is None and index is None:
            ice.sdpMLineIndex = 0
        await self.pc.addIceCandidate(ice)

    async def close(self) -> None:
        """Close the peer connection; safe to call twice, at once too: a second caller returns
        when the first caller's close has ended (however it ended: the first caller sees how)."""
        if self._closing is not None:
            await asyncio.shield(self._closing)
            return
        self._closed = True
        self._closing = asyncio.get_running_loop().create_future()
        try:
            await self.pc.close()
        finally:
            self._closing.set_result(None)


class PublisherPeer(_Peer):
    """The connection the client offers on: its tracks come in, its data packets too."""

    def __init__(
        self,
        label: str,
        on_track: Callable[[str, RTCRtpReceiver], None],
        on_data: Callable[[str, bytes], None],
    ) -> None:
        super().__init__(label)
        self._on_track = on_track
        self._mid_to_cid: dict[str, str] = {}

        @self.pc.on("datachannel")
        def on_datachannel(channel: RTCDataChannel) -> None:
            label = channel.label

            @channel.on("message")
            def on_message(message: bytes | str) -> None:
                if isinstance(message, bytes):
                    on_data(label, message)

        @self.pc.on("track")
        def on_remote_track(track: MediaStreamTrack) -> None:
            for transceiver in self.pc.getTransceivers():
                if transceiver.receiver.track is track and transceiver.mid is not None:
                    cid = self._mid_to_cid.get(transceiver.mid, track.id)
                    self._on_track(cid, transceiver.receiver)

    async def answer(self, offer_sdp: str) -> tuple[str, list[str]]:
        """Answer the client's offer; returns the answer and the cids of its sending tracks."""
        parsed = SessionDescription.parse(offer_sdp)
        cids = []
        for media in parsed.media:
            if media.kind == "audio" and media.direction in ("sendonly", "sendrecv"):
                # "a=msid:<stream> <track>"; the SDK sends stream "-", which aiortc ignores.
                track_id = media.msid.split()[-1] if media.msid else None
                if track_id and media.rtp.muxId:
                    self._mid_to_cid[media.rtp.muxId] = track_id
                    cids.append(track_id)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        await self._flush_candidates()
        answer = await self.pc.createAnswer()
        await self.pc.setLocalDescription(answer)
        return _local_only(self.pc.localDescription.sdp), cids


class SubscriberPeer(_Peer):
    """The connection the server offers on: forwarded tracks and data go out.

    Negotiation is serial: one offer in flight; tracks added meanwhile wait for the next offer.
    """

    def __init__(self, label: str) -> None:
        super().__init__(label)
        self._channels: dict[str, RTCDataChannel] = {}
        self._sending: dict[str, tuple[RTCRtpTransceiver, ForwardTrack]] = {}
        self._by_ssrc: dict[int, ForwardTrack] = {}
        self._to_add: list[tuple[str, ForwardTrack]] = []
        self._offered: list[str] = []
        self._in_flight = False
        self._again = False

    def add_track(self, publisher_sid: str, track: ForwardTrack) -> None:
        """Queue a sendonly audio section carrying ``track`` for the next offer."""
        self._to_add.append((publisher_sid, track))

    async def remove_track(self, track_sid: str) -> bool:
        """Stop sending ``track_sid``; returns whether an offer is needed to say so."""
        for i, (_, queued) in enumerate(self._to_add):
            if queued.track_sid == track_sid:
                del self._to_add[i]
                queued.stop()
                return False
        entry = self._sending.pop(track_sid, None)
        if entry is None:
            return False
        transceiver, track = entry
        self._by_ssrc.pop(transceiver.sender._ssrc, None)
        track.stop()
        transceiver.direction = "inactive"
        # Its section stays in every later offer: a fresh msid there, as libwebrtc (the SDK
        # panics) refuses two sections with the same msid once the track is subscribed again.
        transceiver.sender._track_id = f"{track_sid}-{transceiver.sender._ssrc}"
        await transceiver.sender.stop()
        return True

    def send_data(self, label: str, data: bytes) -> bool:
        """Send ``data`` on the channel named ``label`` if it is open."""
        channel = self._channels.get(label)
        if channel is None or channel.readyState != "open":
            return False
        channel.send(data)
        return True

    async def offer(self) -> str | None:
        """A new offer, or None when one is in flight (another follows its answer) or the
        connection is closed (its participant is leaving while another one unpublishes)."""
        if self._closed:
            return None
        if self._in_flight:
            self._again = True
            return None
        self._in_flight = True
        self._again = False
        self._offered = []
        for publisher_sid, track in self._to_add:
            if track.readyState != "live":
                continue
            transceiver = self.pc.addTransceiver(track, direction="sendonly")
            # The SDK maps media to TrackInfo by msid: stream "PA_x|TR_y", track "TR_y".
            transceiver.sender._stream_id = f"{publisher_sid}|{track.track_sid}"
            transceiver.sender._track_id = track.track_sid
            self._sending[track.track_sid] = (transceiver, track)
            self._by_ssrc[transceiver.sender._ssrc] = track
            self._offered.append(track.track_sid)
        self._to_add.clear()
        if not self._channels:
            # After the audio sections: the other order makes aiortc stop the shared
            # transport under max-bundle and ICE never starts.
            self._channels[RELIABLE] = self.pc.createDataChannel(RELIABLE, ordered=True)
            self._channels[LOSSY] = self.pc.createDataChannel(
                LOSSY, ordered=False, maxRetransmits=0
            )
        try:
            offer = await self.pc.createOffer()
            await self.pc.setLocalDescription(offer)
        except InvalidStateError:
            return None  # closed while the offer was being made
        return _local_only(self.pc.localDescription.sdp)

    async def accept_answer(self, sdp: str) -> tuple[bool, list[str]]:
        """Apply the client's answer; returns whether another offer is due, and the track
        sids that answer accepted."""
        if not self._in_flight:
            raise ProtocolError("a subscriber answer arrived while no offer was in flight")
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        except (ValueError, AssertionError, InvalidAccessError, InvalidStateError) as exc:
            raise ProtocolError(f"the subscriber answer could not be applied: {exc}") from None
        for transceiver, _ in self._sending.values():
            # After the answer: only now is the (bundled) transport of each sender final.
            _renumber_rtp(transceiver.sender.transport, self._by_ssrc)
        await self._flush_candidates()
        self._in_flight = False
        offered, self._offered = self._offered, []
        return self._again or bool(self._to_add), offered

    async def close(self) -> None:
        """Stop every forwarded track and close; safe to call twice."""
        for _, track in self._sending.values():
            track.stop()
        for _, track in self._to_add:
            track.stop()
        self._sending.clear()
        self._by_ssrc.clear()
        self._to_add.clear()
        await super().close()
