"""The embedded server in a child process, for runs that start it themselves.

The server forwards every packet in Python (aiortc); in the speakers' process, sharing their
event loop and GIL, it delayed their audio by hundreds of milliseconds (`docs/realtime.md`). So
`EmbeddedServer` runs `echoproof.sfu.serve` in a child (`pipeline.server._child`): the
credentials go through its environment (never its command line, which other users can read),
the impairment (if any) as JSON in `ECHOPROOF_SFU_IMPAIRMENT`; it says `ready <url>` on stdout
once listening (or `error <why>`), and it stops on SIGTERM or when its stdin closes (the parent
died).

    async with EmbeddedServer("127.0.0.1", 0, key, secret, start_timeout_s=10) as server:
        server.url  # ws://127.0.0.1:PORT
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

from loguru import logger

from echoproof.aiotasks import AsyncClosing
from pipeline.config.impairment import Impairments
from pipeline.errors import ConnectError

KEY_ENV = "ECHOPROOF_SFU_API_KEY"
SECRET_ENV = "ECHOPROOF_SFU_API_SECRET"
IMPAIRMENT_ENV = "ECHOPROOF_SFU_IMPAIRMENT"
_PACKAGE_ROOT = Path(__file__).resolve().parents[1]


class EmbeddedServer(AsyncClosing):
    """`echoproof.sfu.serve` in a child process; an `async with` object whose close is safe
    twice."""

    def __init__(
        self,
        host: str,
        port: int,
        api_key: str,
        api_secret: str,
        *,
        start_timeout_s: float,
        impairment: Impairments | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.url = ""
        self._key = api_key
        self._secret = api_secret
        self._start_timeout_s = start_timeout_s
        self._impairment = impairment
        self._proc: asyncio.subprocess.Process | None = None
        self._relay: asyncio.Task[None] | None = None

    async def __aenter__(self) -> EmbeddedServer:
        await self.start()
        return self

    async def start(self) -> None:
        """Start the child and wait until it listens; ConnectError if it cannot."""
        env = {**os.environ, KEY_ENV: self._key, SECRET_ENV: self._secret}
        env.pop(IMPAIRMENT_ENV, None)
        if self._impairment is not None and not self._impairment.is_none:
            env[IMPAIRMENT_ENV] = self._impairment.to_json()
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(_PACKAGE_ROOT), env.get("PYTHONPATH", "")) if p
        )
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "pipeline.server._child",
            self.host,
            str(self.port),
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            # Its own session: a Ctrl-C meant for the run must not stop the server under it.
            start_new_session=True,
        )
        assert self._proc.stdout is not None and self._proc.stderr is not None
        self._relay = asyncio.create_task(_relay(self._proc.stderr), name="sfu-log-relay")
        where = f"{self.host}:{self.port}"
        try:
            async with asyncio.timeout(self._start_timeout_s):
                line = await self._proc.stdout.readline()
        except TimeoutError:
            await self.aclose()
            raise ConnectError(
                f"the embedded server on {where} did not start within {self._start_timeout_s:g} s."
            ) from None
        words = line.decode(errors="replace").strip().split(maxsplit=1)
        if len(words) != 2 or words[0] != "ready":
            await self.aclose()
            why = words[1].strip().rstrip(".") if words and words[0] == "error" else ""
            raise ConnectError(
                f"could not start the embedded server on {where} ({why or 'is the port free?'})."
            )
        self.url = words[1]
        self.port = int(self.url.rsplit(":", 1)[1])

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        return None if self._proc is None else self._proc.pid

    @property
    def alive(self) -> bool:
        """True while the child runs."""
        return self._proc is not None and self._proc.returncode is None

    async def aclose(self) -> None:
        """Stop the child (SIGTERM, then SIGKILL after 5 s) and reap it; safe to call twice."""
        proc, self._proc = self._proc, None
        relay, self._relay = self._relay, None
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if proc.stdin is not None:
            proc.stdin.close()
        if relay is not None:
            # The child is gone, so its stderr ends: let the relay pass on the last lines.
            with contextlib.suppress(TimeoutError):  # then wait_for cancelled and awaited it
                await asyncio.wait_for(relay, 2)


async def _relay(stream: asyncio.StreamReader) -> None:
    """Pass the child's log lines (`LEVEL|message`) to this process's log, which redacts tokens
    and keeps them off the live progress line."""
    while line := await stream.readline():
        level, _, message = line.decode(errors="replace").rstrip("\n").partition("|")
        if level not in ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"):
            level, message = "INFO", line.decode(errors="replace").rstrip("\n")
        logger.log(level, "sfu: {}", message)
