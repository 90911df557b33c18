"""How long a conversation may take: the wait for its last frames, and the bound on all of it.

`run_bound_s` bounds one conversation from joining to its evidence being closed; it is the
conversation's own timeout, the lifetime of its speakers' tokens (`pipeline.rooms`) and, plus a
start-up allowance, a worker process's watchdog (`pipeline.worker`).
"""

from __future__ import annotations

from pipeline.config import Config

# After the last frame is sent, wait at least TAIL_MIN_S and at most TAIL_MAX_S for the rest
# (plus the longest delay an impairment adds, see tail_max_s).
TAIL_MIN_S = 0.5
TAIL_MAX_S = 2.0


def run_bound_s(config: Config) -> float:
    """The longest one conversation may take, from joining to its evidence being closed."""
    return (
        config.duration_s
        + 3 * config.connect_timeout_s
        + tail_max_s(config)
        + agent_wait_s(config)
        + 30.0
    )


def agent_wait_s(config: Config) -> float:
    """The longest wait for an agent under test: its worker registering, then its join."""
    agent = config.agent
    if agent is None:
        return 0.0
    return (agent.worker_start_timeout_s if agent.cmd else 0.0) + agent.dispatch_timeout_s


def tail_max_s(config: Config) -> float:
    """The longest wait for the last frames: TAIL_MAX_S, plus the impairment's delay and jitter."""
    imp = config.impairment
    if imp is None:
        return TAIL_MAX_S
    links = (imp.customer_to_support, imp.support_to_customer)
    return TAIL_MAX_S + max(link.delay_ms + link.jitter_ms for link in links) / 1000
