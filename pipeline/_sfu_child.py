"""The child process of `pipeline._server.EmbeddedServer`: `sfu.serve` until told to stop.

`python -m pipeline._sfu_child HOST PORT`, with the credentials in the environment. Prints
`ready <url>` once listening (or `error <why>`), stops on SIGTERM, SIGINT or when stdin closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys

from pipeline._server import KEY_ENV, SECRET_ENV


async def _serve(host: str, port: int) -> int:
    import sfu

    key, secret = os.environ.pop(KEY_ENV, ""), os.environ.pop(SECRET_ENV, "")
    loop = asyncio.get_running_loop()
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
        async with sfu.serve(host=host, port=port, api_key=key, api_secret=secret) as server:
            print("ready", server.url, flush=True)
            await stop.wait()
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    return 0


def main() -> int:
    """`python -m pipeline._sfu_child HOST PORT`, credentials in the environment."""
    from loguru import logger

    logger.remove()
    # The parent relays these lines into its own log (see pipeline._server).
    logger.add(sys.stderr, level="INFO", format="{level}|{message}")
    host, port = sys.argv[1], int(sys.argv[2])
    try:
        return asyncio.run(_serve(host, port))
    except OSError as exc:
        print(f"error {exc.strerror or exc}", flush=True)
        return 1
    except Exception as exc:  # the parent reports it in one sentence
        print(f"error {exc!r}", flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
