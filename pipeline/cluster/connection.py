"""Joining a Ray cluster: `auto` (the cluster this machine belongs to, started with `ray start`),
`ray://host:10001` (Ray Client, from outside the cluster) or `local` (a one-machine Ray started
for this run, to try it out).

`require_ray` says in one sentence which extra to install when Ray is missing. A `local` Ray
checks its nodes' health every 2 s and declares a node dead after 5 missed checks: Ray's own
defaults take about a minute to give up on a frozen node. A cluster of your own sets the same
with `ray start --head --system-config=...` (README, "Many callers").
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from typing import Any

from echoproof.aiotasks import AsyncClosing
from pipeline.cluster import RAY_EXTRA
from pipeline.errors import ConfigError, ConnectError

LOCAL = "local"
AUTO = "auto"
_CLIENT = re.compile(r"ray://[A-Za-z0-9.\-\[\]:]+:\d+")
# Faster than Ray's defaults (about 60 s for a frozen node), not so fast that a loaded 2-core
# machine misses checks: 1 s checks declared live nodes dead there.
HEALTH_CHECKS = {
    "health_check_period_ms": 2000,
    "health_check_timeout_ms": 2000,
    "health_check_failure_threshold": 5,
}


def require_ray() -> None:
    """ConfigError, in one sentence, when Ray cannot be imported. Call it before anything
    imports ray: it first sets what Ray reads as it is imported."""
    # A lost node's task fails with an error the driver reports itself (a failed run naming the
    # node); Ray would print it again, unformatted, when its reference is dropped.
    os.environ.setdefault("RAY_IGNORE_UNHANDLED_ERRORS", "1")
    try:
        import ray  # noqa: F401
    except ImportError:
        raise ConfigError(
            f"--ray needs Ray, which is not installed here; install the extra with "
            f"pip install '{RAY_EXTRA}'."
        ) from None


def check_address(address: str) -> None:
    """ConfigError unless `address` is `auto`, `local` or `ray://host:port`."""
    if address not in (AUTO, LOCAL) and not _CLIENT.fullmatch(address):
        raise ConfigError(
            f"--ray is {address!r}; expected auto, local or ray://host:port "
            "(e.g. ray://head:10001)."
        )


class RayConnection(AsyncClosing):
    """This process joined to a Ray cluster (after `require_ray`); an `async with` object whose
    close is safe twice."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._joined = False

    async def __aenter__(self) -> RayConnection:
        # In this thread, though it blocks the loop for seconds: Ray sets its signal handlers
        # only from the main thread, and nothing else runs yet.
        self._join()
        return self

    def _join(self) -> None:
        import ray

        options: dict[str, Any] = {
            # The tasks send their log lines with their messages; Ray's own copy of each
            # worker's output would run into the progress view.
            "log_to_driver": False,
            "logging_level": logging.ERROR,
            "include_dashboard": False,
        }
        if self.address == LOCAL:
            options["_system_config"] = HEALTH_CHECKS
        else:
            options.pop("include_dashboard")
        try:
            ray.init(address=self.address, **options)
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
            raise ConnectError(
                f"could not join the Ray cluster at {self.address} ({_why(exc)})."
            ) from None
        self._joined = True

    async def aclose(self) -> None:
        """Leave the cluster (a `local` one stops); safe to call twice."""
        if not self._joined:
            return
        self._joined = False
        import ray

        await asyncio.to_thread(ray.shutdown)


def _why(exc: BaseException) -> str:
    """Why joining failed, in a few words: a refused token, or the error's first line."""
    cause = exc.__cause__ or exc.__context__
    if cause is not None and "InvalidAuthToken" in str(cause):
        # Ray reads the mode once, as it is imported: the user sets it, as for any Ray driver.
        return (
            "it wants Ray's token authentication: set RAY_AUTH_MODE=token, and RAY_AUTH_TOKEN "
            "or ~/.ray/auth_token to the cluster's token"
        )
    text = str(exc).strip()
    return text.splitlines()[0].rstrip(".") if text else type(exc).__name__
