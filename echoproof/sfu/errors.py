"""Errors of the embedded server.

Every error the server raises on purpose derives from :class:`SfuError`:

- :class:`AuthError`: a join or API token was missing, malformed, expired, signed with another
  secret, or lacked the grant the request needs. ``str()`` is the reason shown to the client.
- :class:`ProtocolError`: a client sent a frame that is not a valid ``SignalRequest`` or asked for
  something the protocol does not allow at that point. Only that client's connection is closed.
- :class:`TwirpError`: a RoomService call failed; carries the Twirp ``code`` and HTTP ``status``.
- :class:`HostNetworkError`: the host has no non-loopback address, so WebRTC clients cannot
  gather ICE candidates.
"""

from __future__ import annotations


class SfuError(Exception):
    """Root of every error raised by the embedded server."""


class AuthError(SfuError):
    """A token was refused; the message says why, without the token itself."""


class ProtocolError(SfuError):
    """A client broke the signalling protocol; only its connection is affected."""


class TwirpError(SfuError):
    """A RoomService call failed with a Twirp error code and its HTTP status."""

    def __init__(self, code: str, msg: str, status: int) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status


class HostNetworkError(SfuError):
    """The host cannot carry WebRTC media (no non-loopback network interface)."""
