"""Media: the two aiortc peer connections of a participant and the forwarding path.

Forwarding never decodes: a tap on the publisher-side ``RTCRtpReceiver`` takes each RTP packet's
payload before aiortc's jitter buffer, and a :class:`TrackFanout` hands it to one
:class:`ForwardTrack` per subscriber. Each ForwardTrack owns its own queue and its ``recv()``
returns :class:`Forwarded` RTP payloads that a :class:`Passthrough` "encoder" hands to aiortc's
``RTCRtpSender`` as they are, so a later stage can hold or drop packets per forwarded stream
without touching the others. RTCP keeps running because the original receive path still sees
every packet; only aiortc's decoder thread is stopped.

Audio is Opus, or RED (RFC 2198: Opus with the previous packets as redundancy) when the publisher
offers it: RED goes to subscribers that accept it and only its primary Opus block to the others,
as livekit-server does. Video (VP8, H.264) goes out as it arrived, one frame (the packets up to the
marker bit) per ``recv()`` so that the sender marks the frame's last packet; a new subscriber's
first pull and its keyframe requests (PLI, FIR) reach the publisher as a PLI, throttled.

aiortc numbers the packets it sends consecutively, so a packet the impairment drops would leave no
trace in the receiver's RTP statistics. Each subscriber connection therefore renumbers outgoing
RTP on its transport (:func:`_renumber_rtp`): every packet dropped before a forwarded one moves
that stream's sequence numbers on by one, and the receiver counts the gap as packets lost, as it
would on a lossy network.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import ipaddress
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import ifaddr
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
    RTCRtpCodecParameters,
    RTCRtpReceiver,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.exceptions import InvalidAccessError, InvalidStateError
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtp import RTCP_PSFB_FIR, RTCP_PSFB_PLI, RtcpPsfbPacket, RtpPacket
from aiortc.sdp import SessionDescription, candidate_from_sdp
from loguru import logger

from .errors import HostNetworkError, ProtocolError
from .impairment import Impairment, Schedule
from .speakers import AudioLevel

# A subscriber that stops reading loses the oldest packets beyond this (10 s of 20 ms packets).
FORWARD_QUEUE_PACKETS = 500
# At most one keyframe request per this many seconds reaches a publisher (livekit-server also
# throttles PLIs: each one costs the publisher a large frame).
KEYFRAME_REQUEST_INTERVAL_S = 0.5
# Opus parameters livekit-server answers a publisher with (RFC 7587 fmtp).
OPUS_FMTP: dict[str, int] = {"minptime": 10, "useinbandfec": 1}

RELIABLE = "_reliable"
LOSSY = "_lossy"
DATA_TRACK = "_data_track"  # data-track packets (sfu.datatrack), each way


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


def red_primary(payload: bytes) -> bytes | None:
    """The primary (newest) block of a RED payload (RFC 2198), or None if it is malformed.

    Each redundant block has a 4-byte header (F bit set, payload type, 14-bit timestamp
    offset, 10-bit length); the 1-byte header of the primary block ends the list, and the
    blocks follow in header order, the primary last.
    """
    pos = 0
    skip = 0
    while pos < len(payload) and payload[pos] & 0x80:
        if pos + 4 > len(payload):
            return None
        skip += int.from_bytes(payload[pos + 2 : pos + 4], "big") & 0x3FF
        pos += 4
    start = pos + 1 + skip
    if start > len(payload):
        return None
    return payload[start:]


def red_wrap(payload: bytes, payload_type: int) -> bytes:
    """``payload`` as a RED payload with no redundancy: one primary block of ``payload_type``."""
    return bytes([payload_type & 0x7F]) + payload


@dataclass(frozen=True)
class AudioOptions:
    """What a published audio track asked for (AddTrackRequest), shaping the Opus answer."""

    dtx: bool = True
    stereo: bool = False
    red: bool = True


@dataclass
class Forwarded:
    """What a :class:`ForwardTrack` returns: one frame's RTP payloads and its RTP timestamp."""

    payloads: list[bytes]
    timestamp: int

    def __bytes__(self) -> bytes:
        return b"".join(self.payloads)


class Passthrough:
    """Stands in for aiortc's encoder on a forwarding sender: :class:`Forwarded` goes out as is.

    ``RTCRtpSender`` sends each payload ``pack()`` returns as one RTP packet, with the marker bit
    on the last one and ``timestamp`` (plus its random origin) as the RTP timestamp.
    """

    def pack(self, data: Forwarded) -> tuple[list[bytes], int]:
        """The payloads and timestamp, unchanged."""
        return data.payloads, data.timestamp

    def encode(self, frame: Any, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        """Never called: a ForwardTrack returns no decoded frames."""
        raise TypeError("a forwarding sender only passes RTP payloads through")


def _is(codec: RTCRtpCodecParameters, name: str) -> bool:
    return codec.name.lower() == name


class ForwardTrack(MediaStreamTrack):
    """One subscriber's copy of a published track: RTP payloads out as :class:`Forwarded`.

    With a :class:`~sfu.impairment.Schedule`, each frame (an audio packet, or a video frame's
    packets) is dropped or held until its release time; without one, it is released as soon as it
    arrives. ``codecs`` are the publisher's negotiated codecs (primary first), offered as they are
    to the subscriber; ``red_out`` says whether the subscriber took RED (see :meth:`push`).
    """

    def __init__(
        self,
        track_sid: str,
        max_packets: int = FORWARD_QUEUE_PACKETS,
        schedule: Schedule | None = None,
        kind: str = "audio",
        codecs: list[RTCRtpCodecParameters] | None = None,
        request_keyframe: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__()
        self.kind = kind
        self.track_sid = track_sid
        self.schedule = schedule
        self.codecs = codecs or []
        self.request_keyframe = request_keyframe
        self.red_out = False
        # (payloads, RTP timestamp, release time on the monotonic clock, drops just before it)
        self._packets: collections.deque[tuple[list[bytes], int, float, int]] = collections.deque(
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

    def push(self, payload: bytes, timestamp: int, red: bool = False) -> None:
        """Queue one audio payload (RED when ``red``) with its RTP timestamp; never blocks.

        RED goes to a subscriber that took RED as it is and as its primary Opus block to one that
        did not; plain Opus to a RED subscriber is wrapped in a RED payload without redundancy.
        """
        if red and not self.red_out:
            primary = red_primary(payload)
            if primary is None:
                return
            payload = primary
        elif self.red_out and not red:
            opus = next((c for c in self.codecs if _is(c, "opus")), None)
            payload = red_wrap(payload, opus.payloadType if opus and opus.payloadType else 111)
        self.push_frame([payload], timestamp)

    def push_frame(self, payloads: list[bytes], timestamp: int) -> None:
        """Queue one frame's RTP payloads with its RTP timestamp; never blocks."""
        # Before the sender pulls (negotiation not done) packets would only add latency.
        if not self._pulling or self.readyState != "live" or not payloads:
            return
        now = time.monotonic()
        release = now if self.schedule is None else self.schedule.admit(now)
        if release is None:
            self._gap += len(payloads)
            return
        if len(self._packets) == self._packets.maxlen:
            self.dropped += 1
        self._packets.append((payloads, timestamp, release, self._gap))
        self._gap = 0
        self._ready.set()

    async def recv(self) -> Forwarded:  # type: ignore[override]
        """The next frame's payloads, with the publisher's RTP timestamp."""
        if not self._pulling:
            self._pulling = True
            if self.request_keyframe is not None:
                # A new video subscriber can decode nothing before a keyframe: ask at once, as
                # livekit-server does when it binds a down track, rather than wait for its PLI.
                await self.request_keyframe()
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
        payloads, timestamp, _, gap = self._packets.popleft()
        self.sequence_skip += gap
        self.forwarded += 1
        return Forwarded(payloads, timestamp)

    def stop(self) -> None:
        """End the track; a waiting ``recv()`` raises ``MediaStreamError``."""
        super().stop()
        self._ready.set()


@dataclass
class _Frame:
    """The packets of the video frame being gathered."""

    timestamp: int = 0
    payloads: list[bytes] = field(default_factory=list)


class TrackFanout:
    """The RTP tap of one published track and the subscribers' copies it feeds.

    ``codecs`` (set once the publisher's offer is answered) are the negotiated codecs, primary
    first: Opus or RED then Opus for audio, one video codec (and its RTX) for video.
    """

    def __init__(self, track_sid: str, kind: str = "audio") -> None:
        self.track_sid = track_sid
        self.kind = kind
        self.codecs: list[RTCRtpCodecParameters] = []
        self.sinks: set[ForwardTrack] = set()
        self.packets = 0
        self.keyframe_requests = 0
        self._receiver: RTCRtpReceiver | None = None
        self._ssrc: int | None = None
        self._frame = _Frame()
        self._last_request = -KEYFRAME_REQUEST_INTERVAL_S
        # The publisher's audio level (ssrc-audio-level), counted per packet; see sfu.speakers.
        self.audio_level = AudioLevel()

    def payload_types(self, name: str) -> set[int]:
        """The negotiated payload types of codec ``name`` ("opus", "red", "vp8"...)."""
        return {c.payloadType for c in self.codecs if _is(c, name) and c.payloadType is not None}

    def attach(self, receiver: RTCRtpReceiver) -> None:
        """Tap ``receiver``'s RTP before aiortc's jitter buffer and silence its decoder."""
        handle = receiver._handle_rtp_packet
        receive = receiver.receive
        self._receiver = receiver

        async def tapped(packet: RtpPacket, arrival_time_ms: int) -> None:
            if packet.payload:
                self.tap(packet)
            level = packet.extensions.audio_level
            if level is not None:
                self.audio_level.observe(level[1])
            await handle(packet, arrival_time_ms)  # statistics and RTCP reports

        async def receive_without_decoder(parameters: Any) -> None:
            await receive(parameters)
            # No one reads the decoded media: stop the decoder thread instead of letting it
            # fill the remote track's queue. Name-mangled, so reached by its mangled name.
            receiver._RTCRtpReceiver__stop_decoder()  # type: ignore[attr-defined]

        receiver._handle_rtp_packet = tapped  # type: ignore[method-assign]
        receiver.receive = receive_without_decoder  # type: ignore[method-assign]

    def tap(self, packet: RtpPacket) -> None:
        """Forward one RTP packet of the published track, by its payload type."""
        pt = packet.payload_type
        if self.kind != "video":
            red = pt in self.payload_types("red")
            if red or not self.codecs or pt in self.payload_types("opus"):
                self.feed(packet.payload, packet.timestamp, red=red)
            return
        primary = self.codecs[0] if self.codecs else None
        if primary is None or pt != primary.payloadType:
            return  # RTX, FEC: the publisher's retransmissions are not forwarded
        self._ssrc = packet.ssrc
        if self._frame.payloads and packet.timestamp != self._frame.timestamp:
            self._flush()  # the previous frame lost its last packet
        frame = self._frame
        frame.timestamp = packet.timestamp
        frame.payloads.append(packet.payload)
        if packet.marker:
            self._flush()

    def _flush(self) -> None:
        frame, self._frame = self._frame, _Frame()
        self.packets += len(frame.payloads)
        for sink in self.sinks:
            sink.push_frame(frame.payloads, frame.timestamp)

    def feed(self, payload: bytes, timestamp: int, red: bool = False) -> None:
        """Hand one audio payload (RED when ``red``) to every subscriber."""
        self.packets += 1
        for sink in self.sinks:
            sink.push(payload, timestamp, red)

    async def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe (PLI), at most once per throttle interval."""
        now = time.monotonic()
        if self._receiver is None or self._ssrc is None:
            return
        if now - self._last_request < KEYFRAME_REQUEST_INTERVAL_S:
            return
        self._last_request = now
        self.keyframe_requests += 1
        await self._receiver._send_rtcp_pli(self._ssrc)

    def subscribe(self, impairment: Impairment | None = None) -> ForwardTrack:
        """A new subscriber's copy of this track, impaired as given."""
        schedule = Schedule(impairment) if impairment and not impairment.is_none else None
        sink = ForwardTrack(
            self.track_sid,
            schedule=schedule,
            kind=self.kind,
            codecs=self.codecs,
            request_keyframe=self.request_keyframe if self.kind == "video" else None,
        )
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


def _forward_with(transceiver: RTCRtpTransceiver, track: ForwardTrack) -> None:
    """Make a new sendonly ``transceiver`` send ``track`` as it is."""
    sender = transceiver.sender
    # Set before the sender starts, so it never makes an encoder of its own.
    sender._RTCRtpSender__encoder = Passthrough()  # type: ignore[attr-defined]
    if track.request_keyframe is None:
        return
    handle = sender._handle_rtcp_packet
    request = track.request_keyframe

    async def relay_keyframe_requests(packet: Any) -> None:
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
            await request()
        await handle(packet)

    sender._handle_rtcp_packet = relay_keyframe_requests  # type: ignore[method-assign]


def _offer_codecs(sdp: str, codecs: dict[str, list[RTCRtpCodecParameters]]) -> str:
    """``sdp`` (aiortc's offer) with each forwarded track's section (found by its msid track id,
    the track sid; aiortc assigns mids only in setLocalDescription) offering ``codecs[sid]``.

    aiortc offers only the codecs it knows, at its own payload types; a forwarded track is
    offered as its publisher negotiated it, payload types included, because RED blocks name
    the Opus payload type inside and the payloads go out untouched.
    """
    parsed = SessionDescription.parse(sdp)
    for media in parsed.media:
        offered = codecs.get(media.msid.split()[-1]) if media.msid else None
        if offered:
            media.rtp.codecs = [copy.deepcopy(c) for c in offered]
            media.fmt = [c.payloadType for c in offered]
    return str(parsed)


def _settle_codecs(
    transceiver: RTCRtpTransceiver, track: ForwardTrack, answered: list[RTCRtpCodecParameters]
) -> None:
    """Send with the codecs the subscriber's answer took, at its payload types.

    aiortc keeps only codecs it knows (not RED) and its own numbers for payload types outside
    96-127; the sender sends with the first. Without RED, ``track`` strips RED to Opus.
    """
    names = {c.name.lower() for c in track.codecs}
    taken = [copy.deepcopy(c) for c in answered if c.name.lower() in names]
    if not taken:
        return
    transceiver._codecs = taken
    track.red_out = _is(taken[0], "red")


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
        self.codecs: dict[str, list[RTCRtpCodecParameters]] = {}

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

    async def answer(
        self, offer_sdp: str, audio_options: Callable[[str], AudioOptions] | None = None
    ) -> tuple[str, list[str]]:
        """Answer the client's offer; returns the answer and the cids of its sending tracks.

        Audio is answered as livekit-server answers it: RED first when offered (unless the track
        disabled it), then Opus with ``minptime=10;useinbandfec=1``, ``usedtx=1`` unless the
        track disabled DTX, ``stereo=1;maxaveragebitrate=510000`` for a stereo track. Video keeps
        the offer's first codec aiortc knows (VP8, H.264) and its RTX. ``codecs`` then holds
        each sending track's negotiated codecs by cid, the one it sends with first.
        """
        parsed = SessionDescription.parse(offer_sdp)
        sending: dict[str, tuple[str, list[RTCRtpCodecParameters]]] = {}
        for media in parsed.media:
            if media.kind in ("audio", "video") and media.direction in ("sendonly", "sendrecv"):
                # "a=msid:<stream> <track>"; the SDK sends stream "-", which aiortc ignores.
                track_id = media.msid.split()[-1] if media.msid else None
                if track_id and media.rtp.muxId:
                    self._mid_to_cid[media.rtp.muxId] = track_id
                    sending[media.rtp.muxId] = (track_id, media.rtp.codecs)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        _follow_ice_restart(self.pc, parsed)
        for transceiver in self.pc.getTransceivers():
            if transceiver.mid not in sending:
                continue
            cid, offered = sending[transceiver.mid]
            if transceiver.kind == "audio":
                options = audio_options(cid) if audio_options else AudioOptions()
                negotiated = _audio_answer(offered, options)
            else:
                negotiated = _video_answer(transceiver._codecs)
            if negotiated:
                # Read by aiortc's createAnswer and by the receiver once media starts.
                transceiver._codecs = negotiated
                self.codecs[cid] = negotiated
        await self._flush_candidates()
        answer = await self.pc.createAnswer()
        await self.pc.setLocalDescription(answer)
        return _local_only(self.pc.localDescription.sdp), [cid for cid, _ in sending.values()]


def _follow_ice_restart(pc: RTCPeerConnection, offer: SessionDescription) -> None:
    """Take the new ICE credentials of an offer that restarts ICE (a resuming client's).

    aiortc starts ICE once and keeps the remote credentials of the first offer; a restarting
    client then checks connectivity with new ones, which aioice would refuse, and would refuse
    aioice's consent checks signed with the old ones. So the running ICE connection adopts
    them; the client's new candidate pairs then succeed and its nomination moves the media.
    """
    ice = next((m.ice for m in offer.media if m.ice and m.ice.usernameFragment), None)
    if ice is None:
        return
    dtls = [t.receiver.transport for t in pc.getTransceivers()]
    if pc.sctp is not None:
        dtls.append(pc.sctp.transport)
    for connection in {d.transport._connection for d in dtls}:
        if connection.remote_username not in (None, ice.usernameFragment):
            connection.remote_username = ice.usernameFragment
            connection.remote_password = ice.password


def _audio_answer(
    offered: list[RTCRtpCodecParameters], options: AudioOptions
) -> list[RTCRtpCodecParameters]:
    """RED (if offered over Opus and wanted) then Opus with livekit-server's parameters."""
    opus = next((c for c in offered if _is(c, "opus")), None)
    if opus is None:
        return []
    params: dict[str, Any] = dict(OPUS_FMTP)
    if options.dtx:
        params["usedtx"] = 1
    if options.stereo:
        params["stereo"] = 1
        params["maxaveragebitrate"] = 510000
    answered = [
        RTCRtpCodecParameters(
            mimeType=opus.mimeType,
            clockRate=opus.clockRate,
            channels=opus.channels,
            payloadType=opus.payloadType,
            rtcpFeedback=list(opus.rtcpFeedback),
            parameters=params,
        )
    ]
    red = next(
        (c for c in offered if _is(c, "red") and str(opus.payloadType) in str(c.parameters)),
        None,
    )
    if red is not None and options.red:
        answered.insert(0, copy.deepcopy(red))
    return answered


def _video_answer(common: list[RTCRtpCodecParameters]) -> list[RTCRtpCodecParameters]:
    """The first codec both sides know, and its RTX: the one codec forwarded."""
    primary = next((c for c in common if not _is(c, "rtx")), None)
    if primary is None:
        return []
    rtx = [c for c in common if _is(c, "rtx") and c.parameters.get("apt") == primary.payloadType]
    return [primary, *rtx]


class SubscriberPeer(_Peer):
    """The connection the server offers on: forwarded tracks and data go out.

    Negotiation is serial: one offer in flight; tracks added meanwhile wait for the next offer.
    """

    def __init__(self, label: str) -> None:
        super().__init__(label)
        self._channels: dict[str, RTCDataChannel] = {}
        self._sending: dict[str, tuple[RTCRtpTransceiver, ForwardTrack]] = {}
        self._by_ssrc: dict[int, ForwardTrack] = {}
        # The codecs each track's section offers, kept once it is stopped: aiortc would offer
        # its own payload types there, and a payload type that names two codecs in one BUNDLE
        # makes libwebrtc refuse the offer.
        self._codecs: dict[str, list[RTCRtpCodecParameters]] = {}
        self._to_add: list[tuple[str, ForwardTrack]] = []
        self._offered: list[str] = []
        self._in_flight = False
        self._again = False

    def add_track(self, publisher_sid: str, track: ForwardTrack) -> None:
        """Queue a sendonly section carrying ``track`` for the next offer."""
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
            _forward_with(transceiver, track)
            self._sending[track.track_sid] = (transceiver, track)
            if track.codecs:
                self._codecs[track.track_sid] = track.codecs
            self._by_ssrc[transceiver.sender._ssrc] = track
            self._offered.append(track.track_sid)
        self._to_add.clear()
        if not self._channels:
            # After the audio sections: the other order makes aiortc stop the shared
            # transport under max-bundle and ICE never starts.
            self._channels[RELIABLE] = self.pc.createDataChannel(RELIABLE, ordered=True)
            for label in (LOSSY, DATA_TRACK):
                self._channels[label] = self.pc.createDataChannel(
                    label, ordered=False, maxRetransmits=0
                )
        try:
            offer = await self.pc.createOffer()
            sdp = _offer_codecs(offer.sdp, self._codecs)
            await self.pc.setLocalDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        except InvalidStateError:
            return None  # closed while the offer was being made
        return _local_only(self.pc.localDescription.sdp)

    async def accept_answer(self, sdp: str) -> tuple[bool, list[str]]:
        """Apply the client's answer; returns whether another offer is due, and the track
        sids that answer accepted."""
        if not self._in_flight:
            raise ProtocolError("a subscriber answer arrived while no offer was in flight")
        try:
            parsed = SessionDescription.parse(sdp)
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        except (ValueError, AssertionError, InvalidAccessError, InvalidStateError) as exc:
            raise ProtocolError(f"the subscriber answer could not be applied: {exc}") from None
        # At once, before the senders start (they do on the next turn of the loop).
        answered = {m.rtp.muxId: m.rtp.codecs for m in parsed.media}
        for transceiver, track in self._sending.values():
            _settle_codecs(transceiver, track, answered.get(transceiver.mid or "", []))
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
