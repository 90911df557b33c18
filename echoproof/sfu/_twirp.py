"""Twirp plumbing shared by the API services: ``POST /twirp/livekit.<Service>/<Method>``.

Bodies are protobuf (``application/protobuf``, what ``livekit.api.LiveKitAPI`` sends) or JSON
(``application/json``); the answer uses the request's encoding. Errors are Twirp JSON
``{"code": ..., "msg": ...}`` with the matching HTTP status. A method is called with the decoded
request and the caller's bearer token, and checks the token's grant itself.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from loguru import logger

from .auth import token_from
from .errors import AuthError, TwirpError

Call = Callable[[Any, str], Awaitable[Message]]  # (the request, the token) -> the answer
Methods = Mapping[str, tuple[type[Message], Call]]  # by method name: request type, call
Handler = Callable[[web.Request], Awaitable[web.Response]]


def not_found(what: str) -> TwirpError:
    """Twirp's not_found, saying that ``what`` does not exist."""
    return TwirpError("not_found", f"{what} does not exist", 404)


def handler(service: str, methods: Methods) -> Handler:
    """The aiohttp handler for ``POST /twirp/livekit.<service>/{method}``."""

    async def handle(request: web.Request) -> web.Response:
        method = request.match_info["method"]
        try:
            return await _call(request, method, service, methods)
        except AuthError as exc:
            code, status = (
                ("permission_denied", 403)
                if str(exc).startswith("permission denied")
                else ("unauthenticated", 401)
            )
            logger.info("{} {} refused: {}", service, method, exc)
            return _error(TwirpError(code, str(exc), status))
        except TwirpError as exc:
            return _error(exc)

    return handle


def _error(exc: TwirpError) -> web.Response:
    return web.Response(
        status=exc.status,
        text=json.dumps({"code": exc.code, "msg": exc.msg}),
        content_type="application/json",
    )


async def _call(request: web.Request, method: str, service: str, methods: Methods) -> web.Response:
    entry = methods.get(method)
    if entry is None:
        raise TwirpError("bad_route", f"no {service} method called {method!r}", 404)
    message_type, call = entry
    token = token_from(request.headers, {})
    as_json = request.content_type == "application/json"
    req = _decode(await request.read(), request.content_type, method, message_type)
    result = await call(req, token)
    if as_json:
        return web.Response(
            text=json_format.MessageToJson(result, preserving_proto_field_name=True),
            content_type="application/json",
        )
    return web.Response(body=result.SerializeToString(), content_type="application/protobuf")


def _decode(body: bytes, content_type: str, method: str, message_type: type[Message]) -> Message:
    """The request ``body`` as ``message_type``; Twirp errors for what does not decode."""
    req = message_type()
    try:
        if content_type == "application/json":
            json_format.Parse(body.decode() or "{}", req, ignore_unknown_fields=True)
        elif content_type == "application/protobuf":
            req.ParseFromString(body)
        else:
            raise TwirpError(
                "bad_route",
                f"unexpected Content-Type {content_type!r}: "
                "expected application/protobuf or application/json",
                415,
            )
    except (DecodeError, json_format.ParseError, UnicodeDecodeError) as exc:
        raise TwirpError(
            "malformed", f"the {method} body does not decode as {message_type.__name__}: {exc}", 400
        ) from None
    return req
