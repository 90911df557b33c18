"""The private parts of aiortc that sfu/media.py patches or reads are still there, same shape.

aiortc does not promise them; pyproject.toml caps aiortc at the minor versions tested. Before
raising that cap, run this module: each failure names the attribute, what sfu/media.py does with
it, and the aiortc version that lacks it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import aiortc
import pytest
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.rtcdtlstransport import RTCDtlsTransport

# aiortc is stable enough to name its minor version in a message.
_VERSION = ".".join(aiortc.__version__.split(".")[:2])

# (class, attribute, parameters after self or None for no check, what sfu/media.py does with it)
_METHODS: list[tuple[type, str, list[str] | None, str]] = [
    (
        RTCRtpReceiver,
        "_handle_rtp_packet",
        ["packet", "arrival_time_ms"],
        "TrackFanout.attach patches to tap each RTP packet's Opus payload before the jitter "
        "buffer (the DTLS transport calls it with arrival_time_ms= by keyword)",
    ),
    (
        RTCRtpReceiver,
        "receive",
        ["parameters"],
        "TrackFanout.attach patches to stop the decoder thread once receiving starts",
    ),
    (
        RTCRtpReceiver,
        "_RTCRtpReceiver__stop_decoder",
        [],
        "TrackFanout.attach calls (by its mangled name) to stop the unused decoder thread",
    ),
    (
        RTCRtpReceiver,
        "_send_rtcp_pli",
        ["media_ssrc"],
        "TrackFanout.request_keyframe calls to relay a subscriber's keyframe request as a PLI",
    ),
    (
        RTCRtpSender,
        "_handle_rtcp_packet",
        ["packet"],
        "_forward_with patches to relay PLI and FIR from a subscriber to the publisher",
    ),
    (
        RTCDtlsTransport,
        "_send_rtp",
        ["data"],
        "_renumber_rtp patches to renumber outgoing RTP after packets the impairment dropped",
    ),
]

# Set in RTCRtpSender.__init__: (attribute, type, what sfu/media.py does with it)
_SENDER_ATTRIBUTES: list[tuple[str, type, str]] = [
    ("_stream_id", str, "SubscriberPeer.offer sets to the msid stream 'PA_x|TR_y' the SDK needs"),
    ("_track_id", str, "SubscriberPeer.offer sets to the msid track id (the track sid)"),
    ("_ssrc", int, "SubscriberPeer maps each forwarded track by it for _renumber_rtp"),
    (
        "_RTCRtpSender__encoder",
        type(None),
        "_forward_with sets to a Passthrough before the sender starts, so that it sends "
        "forwarded payloads as they are and never makes an encoder (for RED: none exists)",
    ),
]


def _missing(owner: str, name: str, why: str) -> str:
    return f"aiortc {_VERSION} no longer has {owner}.{name}, which sfu/media.py {why}"


@pytest.mark.parametrize(("cls", "name", "params", "why"), _METHODS, ids=lambda v: str(v)[:30])
def test_patched_methods_exist(cls: type, name: str, params: list[str] | None, why: str) -> None:
    """Each aiortc method sfu/media.py patches or calls exists, with the parameters it assumes."""
    method: Callable[..., Any] | None = getattr(cls, name, None)
    assert method is not None, _missing(cls.__name__, name, why)
    if params is not None:
        found = list(inspect.signature(method).parameters)[1:]
        assert found == params, (
            f"aiortc {_VERSION} changed {cls.__name__}.{name} to take ({', '.join(found)}) "
            f"instead of ({', '.join(params)}), which sfu/media.py {why}"
        )
    if name != "_RTCRtpReceiver__stop_decoder":
        assert inspect.iscoroutinefunction(method), (
            f"aiortc {_VERSION} made {cls.__name__}.{name} synchronous; sfu/media.py {why} "
            "with a coroutine"
        )


async def test_sender_attributes_shape_the_offer() -> None:
    """The RTCRtpSender attributes sfu/media.py sets or reads exist and still write the SDP."""
    pc = RTCPeerConnection()
    try:
        sender = pc.addTransceiver("audio", direction="sendonly").sender
        for name, kind, why in _SENDER_ATTRIBUTES:
            assert isinstance(getattr(sender, name, None), kind), _missing(
                "RTCRtpSender", name, why
            )
        sender._stream_id = "PA_contract|TR_contract"
        sender._track_id = "TR_contract"
        sdp = (await pc.createOffer()).sdp
        assert "a=msid:PA_contract|TR_contract TR_contract" in sdp, (
            f"aiortc {_VERSION} no longer writes a=msid from RTCRtpSender._stream_id and "
            "_track_id, which SubscriberPeer.offer sets so that the SDK finds the track"
        )
        assert f"a=ssrc:{sender._ssrc} " in sdp, (
            f"aiortc {_VERSION} no longer sends with RTCRtpSender._ssrc, which _renumber_rtp "
            "uses to find the forwarded track of each outgoing packet"
        )
        assert isinstance(sender.transport, RTCDtlsTransport), (
            f"aiortc {_VERSION} RTCRtpSender.transport is no RTCDtlsTransport, whose _send_rtp "
            "sfu/media.py patches"
        )
    finally:
        await pc.close()


def test_modules_sfu_imports_from_aiortc() -> None:
    """The non-top-level aiortc names sfu/media.py imports and the fields it reads exist."""
    from aiortc import mediastreams, rtp, sdp

    for module, name in (
        (rtp, "RtpPacket"),
        (sdp, "SessionDescription"),
        (sdp, "candidate_from_sdp"),
        (mediastreams, "MediaStreamError"),
        (rtp, "RTCP_PSFB_PLI"),
        (rtp, "RTCP_PSFB_FIR"),
        (rtp, "RtcpPsfbPacket"),
    ):
        assert hasattr(module, name), (
            f"aiortc {_VERSION} no longer has {module.__name__}.{name}, which sfu/media.py imports"
        )
    packet = rtp.RtpPacket(payload_type=111, timestamp=960, payload=b"opus")
    assert (packet.payload, packet.timestamp) == (b"opus", 960), (
        f"aiortc {_VERSION} RtpPacket lost payload/timestamp, which TrackFanout.attach forwards"
    )
    offer = sdp.SessionDescription.parse(
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
        "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\n"
        "a=msid:- TR_x\r\na=rtpmap:111 opus/48000/2\r\n"
    )
    media = offer.media[0]
    assert (media.kind, media.direction, media.msid, media.rtp.muxId) == (
        "audio",
        "sendonly",
        "- TR_x",
        "0",
    ), f"aiortc {_VERSION} parses SDP differently from what PublisherPeer.answer reads"
    text = str(offer)
    assert str(sdp.SessionDescription.parse(text)) == text, (
        f"aiortc {_VERSION} no longer writes back the SDP it parses, which _offer_codecs relies "
        "on to offer forwarded tracks with their publisher's codecs"
    )


async def test_transceiver_codecs_drive_the_answer_and_the_sender() -> None:
    """RTCRtpTransceiver._codecs set between the remote offer and createAnswer is answered."""
    from aiortc import RTCRtpCodecParameters, RTCSessionDescription

    offerer, answerer = RTCPeerConnection(), RTCPeerConnection()
    try:
        offerer.addTransceiver("audio", direction="sendonly")
        await offerer.setLocalDescription(await offerer.createOffer())
        await answerer.setRemoteDescription(offerer.localDescription)
        (transceiver,) = answerer.getTransceivers()
        assert isinstance(getattr(transceiver, "_codecs", None), list), _missing(
            "RTCRtpTransceiver", "_codecs", "PublisherPeer.answer and _settle_codecs set"
        )
        transceiver._codecs = [
            RTCRtpCodecParameters(
                "audio/opus", 48000, 2, 96, parameters={"minptime": 10, "useinbandfec": 1}
            )
        ]
        answer = await answerer.createAnswer()
        assert "a=fmtp:96 minptime=10;useinbandfec=1" in answer.sdp, (
            f"aiortc {_VERSION} no longer answers RTCRtpTransceiver._codecs, which "
            "PublisherPeer.answer sets to answer Opus as livekit-server does"
        )
        await answerer.setLocalDescription(answer)
        await offerer.setRemoteDescription(
            RTCSessionDescription(sdp=answerer.localDescription.sdp, type="answer")
        )
    finally:
        await offerer.close()
        await answerer.close()
