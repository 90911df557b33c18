"""The `probe` block: the speech-like probe each speaker plays between its bursts
(`pipeline.tones.probe` plays it).

    "probe": {"share": 0.5, "seed": 1, "file": null}

- `share`: the part of the run that carries the probe, in (0, 1].
- `seed`: the artificial voice (`dsp.speech.artificial_voice`) is drawn from it.
- `file`: a user's own speech instead (WAV, FLAC or OGG, any rate). `--probe FILE` sets it.

Null plays no probe. `ECHOPROOF_FAULT_PROBE_RATE` (`pipeline.config.faults`) is read with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config.faults import RATE_FAULT_ENV, RateFault
from pipeline.config.fields import unknown
from pipeline.errors import ConfigError

DEFAULTS: dict[str, Any] = {"share": 0.5, "seed": 1, "file": None}


@dataclass(frozen=True)
class ProbeConfig:
    """The config's `probe` block, validated."""

    share: float = DEFAULTS["share"]
    seed: int = DEFAULTS["seed"]
    file: Path | None = None
    rate_fault: RateFault | None = None

    def public(self) -> dict[str, Any]:
        """The config-file form (the fault goes under `faults`)."""
        return {
            "share": self.share,
            "seed": self.seed,
            "file": None if self.file is None else str(self.file),
        }


def parse(block: Any, source: str, env: Mapping[str, str]) -> ProbeConfig:
    """The `probe` block of `source` (an object; null is handled by the caller)."""
    if not isinstance(block, dict):
        raise ConfigError(f"{source}: 'probe' is not an object; expected null or an object.")
    unknown(block, DEFAULTS, "probe.", source)
    values = {**DEFAULTS, **block}
    share, seed, file = values["share"], values["seed"], values["file"]
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1:
        raise ConfigError(f"{source}: 'probe.share' is {share!r}; expected a number in (0, 1].")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"{source}: 'probe.seed' is {seed!r}; expected an integer >= 0.")
    if file is not None and (not isinstance(file, str) or not file):
        raise ConfigError(f"{source}: 'probe.file' is {file!r}; expected null or a file path.")
    fault = env.get(RATE_FAULT_ENV)
    return ProbeConfig(
        share=float(share),
        seed=seed,
        file=None if file is None else Path(file),
        rate_fault=RateFault.parse(fault) if fault else None,
    )
