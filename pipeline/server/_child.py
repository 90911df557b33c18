"""The child process of `pipeline.server.process.EmbeddedServer`: `echoproof.sfu.serve` until
told to stop.

`python -m pipeline.server._child HOST PORT`, with the credentials and the impairment in the
environment. Prints `ready <url>` once listening (or `error <why>`), stops on SIGTERM, SIGINT or
when stdin closes.

`python -m echoproof.sfu` serves until a signal too, but it takes the credentials on its command
line (visible to every user of the machine), does not notice its parent dying, and cannot tell
the directions of a conversation apart; so this stays a small program of its own.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from echoproof import sfu
from echoproof.aiotasks import cancel_and_wait
from pipeline.config.impairment import DIRECTIONS, Impairments, direction_of
from pipeline.errors import PipelineError
from pipeline.recording import realtime
from pipeline.server.process import IMPAIRMENT_ENV, KEY_ENV, SECRET_ENV


def policy(impairments: Impairments) -> sfu.ImpairmentPolicy:
    """The server's policy: each stream gets the impairment of its speaker's direction.

    The `sfu.Impairment`s are built here, at start-up, so a setting the server refuses stops
    the child before it says `ready`.
    """
    built: dict[str, sfu.Impairment | None] = {}
    for direction in DIRECTIONS:
        link = getattr(impairments, direction)
        built[direction] = (
            None
            if link.is_none
            else sfu.Impairment(
                delay_ms=link.delay_ms,
                jitter_ms=link.jitter_ms,
                loss_pct=link.loss_pct,
                seed=link.seed,
                outages=link.outages,
            )
        )

    def impairment_for(publisher: str, subscriber: str) -> sfu.Impairment | None:
        direction = direction_of(publisher)
        return None if direction is None else built[direction]

    return impairment_for


async def _serve(host: str, port: int) -> int:
    key, secret = os.environ.pop(KEY_ENV, ""), os.environ.pop(SECRET_ENV, "")
    setting = os.environ.pop(IMPAIRMENT_ENV, "")
    impairment = policy(Impairments.from_json(setting)) if setting else None
    loop = asyncio.get_running_loop()
    sfu.log_loop_errors(loop)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # The parent holds our stdin open: EOF means it is gone, and so should we be.
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def parent_gone() -> None:
        await reader.read()
        stop.set()

    watcher = asyncio.create_task(parent_gone(), name="parent-watch")
    try:
        async with sfu.serve(
            host=host, port=port, api_key=key, api_secret=secret, impairment=impairment
        ) as server:
            print("ready", server.url, flush=True)
            # Forwarding is real-time work too (docs/realtime.md).
            realtime.enter()
            await stop.wait()
    finally:
        realtime.leave()
        await cancel_and_wait(watcher)
    return 0


def main() -> int:
    """`python -m pipeline.server._child HOST PORT`, credentials in the environment."""
    from loguru import logger

    logger.remove()
    # The parent relays these lines into its own log (see pipeline.server.process).
    logger.add(sys.stderr, level="INFO", format="{level}|{message}")
    host, port = sys.argv[1], int(sys.argv[2])
    try:
        return asyncio.run(_serve(host, port))
    except OSError as exc:
        print(f"error {exc.strerror or exc}", flush=True)
        return 1
    except (PipelineError, sfu.SfuError) as exc:
        print(f"error {exc}", flush=True)
        return 1
    except Exception as exc:  # the parent reports it in one sentence
        print(f"error {exc!r}", flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
