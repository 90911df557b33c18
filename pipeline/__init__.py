"""The capture stage: speakers talk over LiveKit and every frame they hear becomes evidence.

    config = pipeline.load_config("config.json", os.environ)
    outcomes = await pipeline.capture(config)   # one Outcome per run folder (docs/evidence.md)

`capture` runs every conversation in this process's event loop; `capture(config, processes=True)`
runs each in a worker process of its own (`pipeline.worker`), which many pairs need to keep real
time. With `config.agent`, the Support side is the user's LiveKit agent, dispatched into the room
(`pipeline.agent.conversation`). `python -m pipeline` runs it from the command line (in workers
when `--pairs` > 1) and verifies each run folder.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.bounded_run import Outcome
    from pipeline.config import Config, load_config, parse_config
    from pipeline.config.impairment import Impairments, LinkImpairment
    from pipeline.errors import ConfigError, ConnectError, PipelineError
    from pipeline.gate import StopSignal
    from pipeline.run import capture
    from pipeline.script import Script
    from pipeline.tones.schedule import Burst, burst_script, schedule

# Each name is imported when first used: a process that needs one module of the package (a Ray
# worker running `pipeline.cluster.task`, say) does not pay for the conversation's imports
# (scipy.signal alone takes over a second of CPU).
_WHERE = {
    "Outcome": "pipeline.bounded_run",
    "Config": "pipeline.config",
    "load_config": "pipeline.config",
    "parse_config": "pipeline.config",
    "Impairments": "pipeline.config.impairment",
    "LinkImpairment": "pipeline.config.impairment",
    "ConfigError": "pipeline.errors",
    "ConnectError": "pipeline.errors",
    "PipelineError": "pipeline.errors",
    "StopSignal": "pipeline.gate",
    "capture": "pipeline.run",
    "Script": "pipeline.script",
    "Burst": "pipeline.tones.schedule",
    "burst_script": "pipeline.tones.schedule",
    "schedule": "pipeline.tones.schedule",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


__all__ = [
    "Burst",
    "Config",
    "ConfigError",
    "ConnectError",
    "Impairments",
    "LinkImpairment",
    "Outcome",
    "PipelineError",
    "Script",
    "StopSignal",
    "burst_script",
    "capture",
    "load_config",
    "parse_config",
    "schedule",
]
