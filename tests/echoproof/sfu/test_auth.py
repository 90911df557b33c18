"""Join and API tokens checked as livekit-server checks them."""

from __future__ import annotations

import time

import jwt
import pytest
from livekit import api

from echoproof.sfu import AuthError
from echoproof.sfu.auth import Authenticator, token_from
from tests.echoproof.sfu._clients import API_KEY, API_SECRET, token

AUTH = Authenticator(API_KEY, API_SECRET)


def hand_made(claims: dict[str, object], *, exp: bool = True) -> str:
    """A token the SDK would refuse to mint, signed with the server's secret."""
    body = {"iss": API_KEY, **claims}
    if exp:
        body["exp"] = int(time.time()) + 600
    return jwt.encode(body, API_SECRET, algorithm="HS256")


def test_valid_join_token_gives_identity_room_and_permissions() -> None:
    """A good token yields who joins which room, with the SDK's default permissions."""
    grant = AUTH.join(token("alice", "room-1"))
    assert (grant.identity, grant.name, grant.room) == ("alice", "alice", "room-1")
    assert grant.can_publish and grant.can_subscribe and grant.can_publish_data


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: token("a", "r", secret="x" * 40), "signature does not match"),
        (lambda: token("a", "r", ttl_s=-120), "expired"),
        (lambda: token("a", "r", grants=api.VideoGrants(room_list=True)), "no roomJoin grant"),
        (lambda: hand_made({"sub": "a", "video": {"roomJoin": True}}), "names no room"),
        (lambda: hand_made({"video": {"roomJoin": True, "room": "r"}}), "no identity"),
        (lambda: hand_made({"sub": "a", "video": {"roomJoin": True}}, exp=False), "'exp'"),
        (lambda: "abc.def", "not a well-formed JWT"),
        (
            lambda: (
                api.AccessToken("otherkey", API_SECRET)
                .with_identity("a")
                .with_grants(api.VideoGrants(room_join=True, room="r"))
                .to_jwt()
            ),
            "another API key",
        ),
    ],
    ids=["secret", "expired", "no-grant", "no-room", "no-identity", "no-exp", "garbage", "key"],
)
def test_bad_join_tokens_say_why(make: object, reason: str) -> None:
    """Each refused token gets one sentence naming the problem, never the token."""
    bad = make()  # type: ignore[operator]
    with pytest.raises(AuthError, match=reason) as info:
        AUTH.join(bad)
    assert bad not in str(info.value)
    assert API_SECRET not in str(info.value)


def test_token_from_header_or_query() -> None:
    """Bearer header first, access_token query parameter as fallback, else a clear error."""
    assert token_from({"Authorization": "Bearer abc"}, {}) == "abc"
    assert token_from({}, {"access_token": "xyz"}) == "xyz"
    with pytest.raises(AuthError, match="no access token"):
        token_from({}, {})
    with pytest.raises(AuthError, match="Bearer"):
        token_from({"Authorization": "Basic abc"}, {})


def test_api_grants_are_checked_per_call() -> None:
    """roomCreate, roomList and roomAdmin for the named room are each required."""
    admin = api.AccessToken(API_KEY, API_SECRET).with_grants(
        api.VideoGrants(room_admin=True, room="r1")
    )
    AUTH.api_grant(admin.to_jwt(), admin_room="r1")
    with pytest.raises(AuthError, match="for room 'r1', not 'r2'"):
        AUTH.api_grant(admin.to_jwt(), admin_room="r2")
    with pytest.raises(AuthError, match="roomCreate"):
        AUTH.api_grant(admin.to_jwt(), create=True)
    with pytest.raises(AuthError, match="roomList"):
        AUTH.api_grant(admin.to_jwt(), list_rooms=True)


def test_dev_secret_is_accepted_without_warning() -> None:
    """livekit-server --dev's short secret "secret" works (PyJWT's key warning is silenced)."""
    import warnings

    dev = Authenticator("devkey", "secret")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        jwt = (
            api.AccessToken("devkey", "secret")
            .with_identity("d")
            .with_grants(api.VideoGrants(room_join=True, room="r"))
            .to_jwt()
        )
    assert dev.join(jwt).identity == "d"
