"""Fixtures of the capture-stage tests: a real embedded server on port 0 and config files."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipeline.server.process import EmbeddedServer
from tests.conftest import scaled

REPO = Path(__file__).resolve().parents[2]


@dataclass
class LiveServer:
    """A running embedded server and the credentials it accepts."""

    url: str
    api_key: str
    api_secret: str


@pytest.fixture
async def server() -> AsyncIterator[LiveServer]:
    """The embedded server on port 0 with a long random secret (easy to scan for).

    It runs in its own process, as a run that starts it does: in the test's event loop its
    Python packet forwarding would compete with the agents and add hundreds of ms of latency.
    """
    key, secret = "pipelinetests", "s3cret-" + secrets.token_hex(16)
    async with EmbeddedServer("127.0.0.1", 0, key, secret, start_timeout_s=scaled(30)) as srv:
        yield LiveServer(srv.url, key, secret)


def write_config(path: Path, url: str, key: str, secret: str, **fields: Any) -> Path:
    """A config file in the original shape plus `fields`."""
    data = {"livekit": {"url": url, "api_key": key, "api_secret": secret}, **fields}
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def free_port() -> int:
    """A loopback port nobody listens on (right now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Finished:
    """A finished CLI process."""

    code: int
    stdout: str
    stderr: str


def cli_env() -> dict[str, str]:
    """The environment of a CLI subprocess: no LIVEKIT_* leaking in, the repo importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEKIT_")}
    env["PYTHONPATH"] = str(REPO)
    return env


async def start_cli(*args: str, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    """`python -m pipeline ARGS` started in the repository root (`env`: extra variables)."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pipeline",
        *args,
        cwd=REPO,
        env={**cli_env(), **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def run_cli(*args: str, limit_s: float, env: dict[str, str] | None = None) -> Finished:
    """Run the CLI to the end (killed after `limit_s` seconds) and collect its output."""
    proc = await start_cli(*args, env=env)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), limit_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return Finished(proc.returncode, out.decode(), err.decode())


async def wait_talking(proc: asyncio.subprocess.Process, conversations: int = 1) -> bytes:
    """Read the CLI's log until `conversations` say their agents talk; return what was read."""
    assert proc.stderr is not None
    stderr = b""
    async with asyncio.timeout(scaled(90)):
        while stderr.count(b"talking for") < conversations:
            line = await proc.stderr.readline()
            assert line, stderr.decode()
            stderr += line
    return stderr
