"""The `ray` block: how a run placed on a Ray cluster (`--ray ADDRESS`, `pipeline.cluster`) asks
for room and notices a lost node.

    "ray": {"cpus_per_conversation": 0.25, "lost_after_s": 20}

- `cpus_per_conversation`: the CPU each conversation's task reserves on its node (both speakers
  and the task around them); measured at about 0.18-0.2 of a core per tone conversation
  (`python -m benchmarks ray_cost`), so the default leaves a little headroom.
- `lost_after_s`: a conversation whose node has said nothing for this long (a frozen node, which
  Ray declares dead only after its health checks fail) fails, naming the node.

Runs without `--ray` ignore the block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.config.fields import number, obj, unknown
from pipeline.errors import ConfigError

DEFAULTS: dict[str, Any] = {"cpus_per_conversation": 0.25, "lost_after_s": 20.0}


@dataclass(frozen=True)
class ClusterConfig:
    """The config's `ray` block, validated."""

    cpus_per_conversation: float = DEFAULTS["cpus_per_conversation"]
    lost_after_s: float = DEFAULTS["lost_after_s"]

    def public(self) -> dict[str, Any]:
        """The config-file form."""
        return {
            "cpus_per_conversation": self.cpus_per_conversation,
            "lost_after_s": self.lost_after_s,
        }


def parse(block: Any, source: str) -> ClusterConfig:
    """The `ray` block of `source`: an object, every field optional."""
    values = {**DEFAULTS, **obj(block, "ray", source)}
    unknown(values, DEFAULTS, "ray.", source)
    cpus = number(values["cpus_per_conversation"], "ray.cpus_per_conversation", source)
    lost = number(values["lost_after_s"], "ray.lost_after_s", source)
    if not 0 < cpus <= 64:
        raise ConfigError(
            f"{source}: 'ray.cpus_per_conversation' is {cpus:g}; expected a number in (0, 64]."
        )
    if not 5 <= lost <= 600:
        raise ConfigError(
            f"{source}: 'ray.lost_after_s' is {lost:g}; expected seconds in [5, 600]."
        )
    return ClusterConfig(cpus_per_conversation=cpus, lost_after_s=lost)
