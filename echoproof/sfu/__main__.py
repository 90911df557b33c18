"""``python -m echoproof.sfu``: run the embedded server until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

from loguru import logger

from .errors import SfuError
from .impairment import Impairment, ImpairmentError, ImpairmentPolicy
from .server import log_loop_errors, serve
from .settings import Settings


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m echoproof.sfu",
        description="An embedded LiveKit-compatible server (defaults match livekit-server --dev).",
    )
    parser.add_argument(
        "--host", default=Settings.host, help="address to bind (default %(default)s)"
    )
    parser.add_argument("--port", type=int, default=Settings.port, help="port; 0 picks a free one")
    # From the environment first, so that a real secret need not show in `ps`.
    parser.add_argument(
        "--api-key",
        default=os.environ.get("LIVEKIT_API_KEY", Settings.api_key),
        help=f"API key (default $LIVEKIT_API_KEY, else {Settings.api_key})",
    )
    parser.add_argument(
        "--api-secret",
        default=os.environ.get("LIVEKIT_API_SECRET", Settings.api_secret),
        help=f"API secret (default $LIVEKIT_API_SECRET, else {Settings.api_secret})",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"],
        help="loguru level (default INFO)",
    )
    parser.add_argument(
        "--webhook",
        action="append",
        default=[],
        metavar="URL",
        help="POST livekit-server's webhook events to URL, signed with the API key (repeatable)",
    )
    impair = parser.add_argument_group("impairment of every forwarded stream")
    impair.add_argument("--delay-ms", type=float, default=0.0, help="fixed delay")
    impair.add_argument("--jitter-ms", type=float, default=0.0, help="extra delay, 0..N ms")
    impair.add_argument(
        "--loss", type=float, default=0.0, help="percent of packets dropped at random (0-100)"
    )
    impair.add_argument("--seed", type=int, default=0, help="seed of the random loss and jitter")
    impair.add_argument(
        "--outage",
        action="append",
        default=[],
        metavar="START_S:DURATION_S",
        help="drop everything in this window after a stream's first packet (repeatable)",
    )
    impair.add_argument(
        "--impair-to",
        default="",
        metavar="PREFIX",
        help="impair only streams to subscribers whose identity starts with PREFIX (default: all)",
    )
    return parser


def _outage(text: str) -> tuple[float, float]:
    start, sep, duration = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return float(start), float(duration)
    except ValueError:
        raise ImpairmentError(f"--outage {text!r}: expected START_S:DURATION_S, e.g. 5:2") from None


def _only_to(prefix: str, impairment: Impairment) -> ImpairmentPolicy:
    """A policy impairing only the streams whose subscriber's identity starts with ``prefix``."""

    def policy(publisher: str, subscriber: str) -> Impairment | None:
        return impairment if subscriber.startswith(prefix) else None

    return policy


def impairment_of(args: argparse.Namespace) -> Impairment | ImpairmentPolicy | None:
    """What the command line asks the server to do to forwarded streams (None: nothing)."""
    impairment = Impairment(
        delay_ms=args.delay_ms,
        jitter_ms=args.jitter_ms,
        loss_pct=args.loss,
        seed=args.seed,
        outages=tuple(_outage(o) for o in args.outage),
    )
    if impairment.is_none:
        return None
    return _only_to(args.impair_to, impairment) if args.impair_to else impairment


async def _run(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    log_loop_errors(loop)
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    policy = impairment_of(args)
    async with serve(
        args.host,
        args.port,
        args.api_key,
        args.api_secret,
        impairment=policy,
        webhook_urls=args.webhook,
    ) as server:
        print(f"sfu listening on {server.url}", flush=True)
        await stop.wait()
        logger.info("stopping: disconnecting everyone")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (0 after SIGINT/SIGTERM, 1 on a startup error)."""
    args = parser().parse_args(argv)
    logger.remove()
    logger.add(sys.stderr, level=args.log_level)
    try:
        asyncio.run(_run(args))
    except SfuError as exc:
        logger.error("{}", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
