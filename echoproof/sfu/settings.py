"""What the embedded server is told at start: where it listens, its credentials, its timings,
the impairment of forwarded streams and where webhooks go. Each default is written here once;
:func:`~echoproof.sfu.server.serve` and :class:`~echoproof.sfu.server.Server` take these fields as
their arguments.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Concatenate, ParamSpec, TypeVar

from .auth import TOKEN_LEEWAY_S
from .impairment import Impairment, ImpairmentPolicy

# livekit-server's tokenRefreshInterval: how often a participant is sent a fresh join token.
TOKEN_REFRESH_INTERVAL_S = 300.0

P = ParamSpec("P")
S = TypeVar("S")


@dataclass(frozen=True)
class Settings:
    """The server's configuration (the defaults match ``livekit-server --dev``).

    ``impairment`` applies to every forwarded stream, or, as a function of (publisher identity,
    subscriber identity), to each stream it returns one for. livekit-server's webhook events
    (room, participant and track) are POSTed to each of ``webhook_urls``, signed with the API
    key and secret (see :mod:`echoproof.sfu.webhook`). Each participant gets a fresh join token
    every ``token_refresh_interval`` seconds and whenever its claims change; a token is accepted
    up to ``token_leeway_s`` past its expiry.
    """

    host: str = "127.0.0.1"
    port: int = 7880  # 0 picks a free port
    api_key: str = "devkey"
    api_secret: str = "secret"
    _: KW_ONLY
    ping_interval: int = 5
    ping_timeout: int = 15
    impairment: Impairment | ImpairmentPolicy | None = None
    webhook_urls: Sequence[str] = ()
    token_refresh_interval: float = TOKEN_REFRESH_INTERVAL_S
    token_leeway_s: float = TOKEN_LEEWAY_S

    def impairment_for(self, publisher: str, subscriber: str) -> Impairment | None:
        """The impairment of the stream from ``publisher`` to ``subscriber`` (identities)."""
        if self.impairment is None or isinstance(self.impairment, Impairment):
            return self.impairment
        return self.impairment(publisher, subscriber)


def taking_fields_of(
    make: Callable[P, Settings],
) -> Callable[[Callable[[S, Settings], None]], Callable[Concatenate[S, P], None]]:
    """Make ``__init__(self, settings)`` take the arguments of ``make`` (the :class:`Settings`
    fields) instead, so that the parameter list and its defaults are written once: here."""

    def decorate(init: Callable[[S, Settings], None]) -> Callable[Concatenate[S, P], None]:
        @functools.wraps(init)
        def __init__(self: S, *args: P.args, **kwargs: P.kwargs) -> None:
            init(self, make(*args, **kwargs))

        # What help() and IDEs show: the fields, not the wrapped (self, settings).
        fields = inspect.signature(make).parameters.values()
        self_ = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
        __init__.__signature__ = inspect.Signature([self_, *fields])  # type: ignore[attr-defined]
        return __init__

    return decorate
