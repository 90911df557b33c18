"""An embedded LiveKit-compatible server: signalling (with resume), Opus forwarding without
re-encoding, data packets, data tracks, the RoomService API and agent dispatch, for tests and the
capture stage.

    async with sfu.serve(host="127.0.0.1", port=0) as server:
        ...  # connect livekit.rtc.Room clients to server.url
"""

from .errors import AuthError, HostNetworkError, ProtocolError, SfuError, TwirpError
from .impairment import Impairment, ImpairmentError, ImpairmentPolicy
from .media import check_host_network, host_addresses
from .server import Server, log_loop_errors, serve
from .settings import Settings

__all__ = [
    "AuthError",
    "HostNetworkError",
    "Impairment",
    "ImpairmentError",
    "ImpairmentPolicy",
    "ProtocolError",
    "Server",
    "Settings",
    "SfuError",
    "TwirpError",
    "check_host_network",
    "host_addresses",
    "log_loop_errors",
    "serve",
]
