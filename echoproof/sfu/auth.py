"""Tokens: join tokens on ``/rtc`` and API tokens on the Twirp RoomService.

Both are HS256 JWTs made by ``livekit.api.AccessToken`` and checked with
``livekit.api.TokenVerifier``. Reasons never quote the token or the secret.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

import jwt
from livekit import api
from livekit.api.access_token import Claims
from livekit.protocol import agent_dispatch, models

from .errors import AuthError

if TYPE_CHECKING:
    from .room import Participant

# livekit-server's tokenDefaultTTL: how long a refreshed token stays valid.
REFRESHED_TOKEN_TTL_S = 600
# livekit-server's (go-jose's) default: a token is accepted this long past its expiry.
TOKEN_LEEWAY_S = 60.0


@dataclass(frozen=True)
class JoinGrant:
    """What a valid join token allows: who joins which room, with which permissions."""

    identity: str
    name: str
    room: str
    metadata: str
    can_publish: bool
    can_subscribe: bool
    can_publish_data: bool
    can_update_metadata: bool = False
    kind: int = models.ParticipantInfo.Kind.STANDARD
    attributes: dict[str, str] = field(default_factory=dict)
    # the agents the token's room configuration dispatches when its join creates the room
    agents: tuple[agent_dispatch.RoomAgentDispatch, ...] = ()


def participant_kind(kind: str) -> int:
    """The ``ParticipantInfo.Kind`` named by a token's ``kind`` claim ("agent", "sip"...).

    Empty or unknown names are STANDARD, as in livekit-server.
    """
    try:
        return models.ParticipantInfo.Kind.Value(kind.upper())
    except ValueError:
        return models.ParticipantInfo.Kind.STANDARD


def token_from(headers: Mapping[str, str], query: Mapping[str, str]) -> str:
    """The bearer token of a request: ``Authorization: Bearer`` header, else ``access_token``."""
    header = headers.get("Authorization", "")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AuthError("invalid authorization header: expected 'Bearer <token>'")
        return value.strip()
    token = query.get("access_token", "")
    if not token:
        raise AuthError(
            "no access token: expected an Authorization: Bearer header "
            "or an access_token query parameter"
        )
    return token


class Authenticator:
    """Checks tokens against one API key and secret, as livekit-server does."""

    def __init__(self, api_key: str, api_secret: str, *, leeway_s: float = TOKEN_LEEWAY_S) -> None:
        if not api_key or not api_secret:
            raise AuthError("the server needs a non-empty api_key and api_secret")
        self.api_key = api_key
        self._api_secret = api_secret
        self._verifier = api.TokenVerifier(api_key, api_secret, leeway=timedelta(seconds=leeway_s))

    def claims(self, token: str) -> Claims:
        """The verified claims of ``token``; :class:`AuthError` with the reason otherwise."""
        try:
            with warnings.catch_warnings():
                # livekit-server --dev uses the 6-byte secret "secret": accepted, as there.
                warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
                return self._verifier.verify(token)
        except jwt.ExpiredSignatureError:
            raise AuthError("invalid token: the token has expired") from None
        except jwt.InvalidIssuerError:
            raise AuthError(
                "invalid token: it was issued for another API key than this server's"
            ) from None
        except jwt.InvalidSignatureError:
            raise AuthError(
                "invalid token: the signature does not match this server's API secret"
            ) from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"invalid token: the '{exc.claim}' claim is missing") from None
        except jwt.DecodeError:
            raise AuthError("invalid token: it is not a well-formed JWT") from None
        except jwt.InvalidAlgorithmError:
            raise AuthError(
                "invalid token: it is not signed with HS256, the only algorithm accepted"
            ) from None
        except jwt.ImmatureSignatureError:
            raise AuthError("invalid token: it is not valid yet (its nbf lies ahead)") from None
        except (jwt.InvalidTokenError, TypeError, ValueError) as exc:
            raise AuthError(f"invalid token: {type(exc).__name__}") from None

    def join(self, token: str) -> JoinGrant:
        """The join grant of ``token``: it must carry ``roomJoin``, a room and an identity."""
        claims = self.claims(token)
        video = claims.video
        if video is None or not video.room_join:
            raise AuthError("permission denied: the token has no roomJoin grant")
        if not video.room:
            raise AuthError("permission denied: the token's roomJoin grant names no room")
        if not claims.identity:
            raise AuthError("invalid token: the token has no identity (sub claim)")
        return JoinGrant(
            identity=claims.identity,
            name=claims.name or "",
            room=video.room,
            metadata=claims.metadata or "",
            can_publish=bool(video.can_publish),
            can_subscribe=bool(video.can_subscribe),
            can_publish_data=bool(video.can_publish_data),
            can_update_metadata=bool(video.can_update_own_metadata),
            kind=participant_kind(claims.kind or ""),
            attributes={str(k): str(v) for k, v in (claims.attributes or {}).items()},
            agents=tuple(claims.room_config.agents) if claims.room_config else (),
        )

    def mint(
        self,
        identity: str,
        grants: api.VideoGrants,
        *,
        ttl_s: float,
        name: str = "",
        metadata: str = "",
        attributes: Mapping[str, str] | None = None,
        kind: str = "standard",
    ) -> str:
        """A token signed with this server's key and secret: the one place the secret signs."""
        token = (
            api.AccessToken(self.api_key, self._api_secret)
            .with_identity(identity)
            .with_name(name)
            .with_metadata(metadata)
            .with_attributes(dict(attributes or {}))
            .with_kind(kind)  # type: ignore[arg-type]
            .with_grants(grants)
            .with_ttl(timedelta(seconds=ttl_s))
        )
        return token.to_jwt()

    def refreshed(self, room: str, participant: Participant) -> str:
        """A new join token for ``participant`` as it is now (its name, metadata, attributes
        and grants), valid for :data:`REFRESHED_TOKEN_TTL_S`, as livekit-server's
        ``refresh_token`` carries: the SDK reconnects with it once the first one expired."""
        grants = api.VideoGrants(
            room_join=True,
            room=room,
            can_publish=participant.can_publish,
            can_subscribe=participant.can_subscribe,
            can_publish_data=participant.can_publish_data,
            can_update_own_metadata=participant.can_update_metadata,
        )
        return self.mint(
            participant.identity,
            grants,
            ttl_s=REFRESHED_TOKEN_TTL_S,
            name=participant.name,
            metadata=participant.metadata,
            attributes=participant.attributes,
            kind=models.ParticipantInfo.Kind.Name(participant.kind).lower(),
        )

    def worker(self, token: str) -> None:
        """Check an agent worker's token: it must carry the ``agent`` grant."""
        video = self.claims(token).video
        if video is None or not video.agent:
            raise AuthError("permission denied: the token has no agent grant")

    def api_grant(
        self,
        token: str,
        *,
        create: bool = False,
        list_rooms: bool = False,
        admin_room: str | None = None,
    ) -> api.VideoGrants:
        """The video grants of an API token, checked for the permission one call needs."""
        video = self.claims(token).video or api.VideoGrants()
        if create and not video.room_create:
            raise AuthError("permission denied: the token has no roomCreate grant")
        if list_rooms and not video.room_list:
            raise AuthError("permission denied: the token has no roomList grant")
        if admin_room is not None:
            if not video.room_admin:
                raise AuthError("permission denied: the token has no roomAdmin grant")
            if video.room != admin_room:
                raise AuthError(
                    f"permission denied: the token's roomAdmin grant is for room "
                    f"{video.room!r}, not {admin_room!r}"
                )
        return video
