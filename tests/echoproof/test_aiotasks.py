"""cancel_and_wait: a task's cancellation is expected, the caller's is not, errors are not lost."""

from __future__ import annotations

import asyncio

import pytest

from echoproof.aiotasks import cancel_and_wait


async def _forever(ended: list[str], name: str) -> None:
    try:
        await asyncio.sleep(3600)
    finally:
        ended.append(name)


async def test_cancels_and_awaits_every_task() -> None:
    """Every task is cancelled and has ended when the call returns; None entries are skipped."""
    ended: list[str] = []
    tasks = [asyncio.create_task(_forever(ended, n)) for n in "ab"]
    await asyncio.sleep(0)
    await cancel_and_wait(*tasks, None)
    assert sorted(ended) == ["a", "b"]
    assert all(t.cancelled() for t in tasks)


async def test_a_cancelled_caller_stays_cancelled() -> None:
    """A caller cancelled while it waits raises CancelledError, after the tasks have ended."""
    ended: list[str] = []
    release = asyncio.Event()

    async def slow_to_end() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await release.wait()  # an orderly teardown that takes a moment
            ended.append("slow")

    task = asyncio.create_task(slow_to_end())
    await asyncio.sleep(0)
    caller = asyncio.create_task(cancel_and_wait(task))
    await asyncio.sleep(0.01)
    caller.cancel()
    await asyncio.sleep(0.01)
    assert not caller.done()  # still waiting for the task to end
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert ended == ["slow"]


async def test_a_timeout_around_the_caller_still_fires() -> None:
    """asyncio.timeout around a teardown turns the caller's cancellation into TimeoutError."""

    async def stubborn() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0.05)

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await cancel_and_wait(task)
    assert task.done()


async def test_a_task_error_is_raised() -> None:
    """A task's own error is raised once all have ended; several come as an ExceptionGroup."""

    async def fails() -> None:
        raise ValueError("broken")

    one = asyncio.create_task(fails())
    await asyncio.sleep(0)
    with pytest.raises(ValueError, match="broken"):
        await cancel_and_wait(one)
    two = [asyncio.create_task(fails()) for _ in range(2)]
    await asyncio.sleep(0)
    with pytest.raises(ExceptionGroup) as group:
        await cancel_and_wait(*two)
    assert len(group.value.exceptions) == 2
