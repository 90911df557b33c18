"""``python -m echoproof.sfu``: prints its URL, serves, exits 0 on SIGTERM and SIGINT."""

from __future__ import annotations

import asyncio
import re
import signal
import sys

import aiohttp
import pytest

from tests.conftest import scaled


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_cli_prints_url_and_exits_cleanly(signum: int) -> None:
    """With --port 0 the real URL is printed; the signal ends it with exit code 0."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "echoproof.sfu", "--port", "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(scaled(20)):
            line = (await proc.stdout.readline()).decode()
        match = re.search(r"ws://127\.0\.0\.1:(\d+)", line)
        assert match, f"no URL in {line!r}"
        port = int(match.group(1))
        assert port != 0
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/rtc/v1/validate") as r,
        ):
            assert r.status == 404
        proc.send_signal(signum)
        async with asyncio.timeout(scaled(20)):
            _, stderr = await proc.communicate()
        assert proc.returncode == 0, stderr.decode()
        assert b"secret" not in stderr
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_cli_reports_a_busy_port() -> None:
    """A port already in use is one error sentence and exit code 1, not a traceback."""
    blocker = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = blocker.sockets[0].getsockname()[1]
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "echoproof.sfu", "--port", str(port),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        async with asyncio.timeout(scaled(20)):
            _, stderr = await proc.communicate()
    finally:
        blocker.close()
        await blocker.wait_closed()
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in stderr.decode()
    assert b"Traceback" not in stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--loss", "101"], "loss is 101.0 %: expected a percentage between 0 and 100"),
        (["--outage", "5"], "expected START_S:DURATION_S"),
    ],
    ids=["loss", "outage"],
)
async def test_cli_refuses_bad_impairment(args: list[str], message: str) -> None:
    """An impairment out of range is one sentence and exit code 1."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "echoproof.sfu", "--port", "0", *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(scaled(20)):
        _, stderr = await proc.communicate()
    assert proc.returncode == 1
    assert message in stderr.decode()
    assert b"Traceback" not in stderr
