"""Fixtures for the server tests: a real embedded server on port 0."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from echoproof import sfu
from tests.echoproof.sfu._clients import API_KEY, API_SECRET


@pytest_asyncio.fixture
async def server() -> AsyncIterator[sfu.Server]:
    """A running server on 127.0.0.1 and a free port."""
    async with sfu.serve(host="127.0.0.1", port=0, api_key=API_KEY, api_secret=API_SECRET) as s:
        yield s
