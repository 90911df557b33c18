"""The capture stage: speakers talk over LiveKit and every frame they hear becomes evidence.

    config = pipeline.load_config("config.json", os.environ)
    outcomes = await pipeline.capture(config)   # one Outcome per run folder (docs/evidence.md)

`capture` runs every conversation in this process's event loop; `capture(config, processes=True)`
runs each in a worker process of its own (`pipeline.worker`), which many pairs need to keep real
time. With `config.agent`, the Support side is the user's LiveKit agent, dispatched into the room
(`pipeline.agent.conversation`). `python -m pipeline` runs it from the command line (in workers
when `--pairs` > 1) and verifies each run folder.
"""

from pipeline.bounded_run import Outcome
from pipeline.config import Config, load_config, parse_config
from pipeline.config.impairment import Impairments, LinkImpairment
from pipeline.errors import ConfigError, ConnectError, PipelineError
from pipeline.gate import StopSignal
from pipeline.run import capture
from pipeline.script import Script
from pipeline.tones.schedule import Burst, burst_script, schedule

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
