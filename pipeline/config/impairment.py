"""The `impairment` block: what the embedded server does to the audio of each direction.

The optional `impairment` block of config.json sets a delay, jitter, random loss and outages for
both directions, and `customer_to_support` / `support_to_customer` blocks override any of those
fields for one direction:

    "impairment": {"delay_ms": 0, "jitter_ms": 0, "loss_pct": 0, "seed": 0,
                   "outages": [[2.0, 3.0]],
                   "support_to_customer": {"outages": []}}

Each outage is `[start_s, duration_s]`, counted from the stream's first packet. The block is
evidence: `public()` goes into the manifest's config, so a report judges the run knowing what the
network was told to do. Only a server the run starts itself can apply it (`pipeline.server._child`
builds `sfu.Impairment`s from `to_json()`, choosing a stream's by `direction_of` its speaker).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from echoproof.contract import IDENTITY_PREFIXES, ROLES, other
from pipeline.config.fields import is_number, kind, obj, unknown
from pipeline.errors import ConfigError

# A direction is named after who speaks and who hears.
_SPEAKER = {f"{role}_to_{other(role)}": role for role in ROLES}
DIRECTIONS = tuple(_SPEAKER)
_FIELDS = ("delay_ms", "jitter_ms", "loss_pct", "seed", "outages")
_MAX_MS = 10_000.0
_MAX_S = 86_400.0


@dataclass(frozen=True)
class LinkImpairment:
    """What happens to the audio of one direction (the fields of `sfu.Impairment`)."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss_pct: float = 0.0
    seed: int = 0
    outages: tuple[tuple[float, float], ...] = ()

    @property
    def is_none(self) -> bool:
        """True when this changes nothing."""
        return not (self.delay_ms or self.jitter_ms or self.loss_pct or self.outages)

    def public(self) -> dict[str, Any]:
        """The config-file form."""
        return {
            "delay_ms": self.delay_ms,
            "jitter_ms": self.jitter_ms,
            "loss_pct": self.loss_pct,
            "seed": self.seed,
            "outages": [[start, length] for start, length in self.outages],
        }


@dataclass(frozen=True)
class Impairments:
    """The impairment of both directions of every conversation of a run."""

    customer_to_support: LinkImpairment = LinkImpairment()
    support_to_customer: LinkImpairment = LinkImpairment()

    @property
    def is_none(self) -> bool:
        """True when neither direction is impaired."""
        return self.customer_to_support.is_none and self.support_to_customer.is_none

    def public(self) -> dict[str, Any]:
        """The effective setting of each direction, as recorded in the manifest."""
        return {d: getattr(self, d).public() for d in DIRECTIONS}

    def to_json(self) -> str:
        """The form passed to the server's child process (see `from_json`)."""
        return json.dumps(self.public())

    @classmethod
    def from_json(cls, text: str) -> Impairments:
        """Read `to_json()` back; ConfigError if it is not that form."""
        return parse(json.loads(text), "the impairment setting")


def direction_of(speaker: str) -> str | None:
    """The direction in which `speaker` (an identity) is heard; None for a stranger."""
    for direction in DIRECTIONS:
        if speaker.startswith(IDENTITY_PREFIXES[_SPEAKER[direction]]):
            return direction
    return None


def parse(value: Any, source: str) -> Impairments:
    """Validate the `impairment` block of a config; ConfigError names the first bad field."""
    where = "impairment"
    base = _fields(obj(value, where, source), where, source, allow=DIRECTIONS)
    directions = {}
    for direction in DIRECTIONS:
        override: dict[str, Any] = {}
        if direction in value and value[direction] is not None:
            name = f"{where}.{direction}"
            override = _fields(obj(value[direction], name, source), name, source, allow=())
        directions[direction] = LinkImpairment(**{**base, **override})
    return Impairments(**directions)


def _fields(block: dict[str, Any], name: str, source: str, *, allow: tuple[str, ...]) -> dict:
    """The impairment fields present in `block`, checked; `allow` names nested blocks."""
    unknown(block, (*_FIELDS, *allow), f"{name}.", source)
    out: dict[str, Any] = {}
    for key, limit in (("delay_ms", _MAX_MS), ("jitter_ms", _MAX_MS), ("loss_pct", 100.0)):
        if key in block:
            value = block[key]
            unit = "percent" if key == "loss_pct" else "milliseconds"
            if not is_number(value) or not 0 <= value <= limit:
                raise ConfigError(
                    f"{source}: '{name}.{key}' is {kind(value)}; "
                    f"expected {unit} from 0 to {limit:g}."
                )
            out[key] = float(value)
    if "seed" in block:
        seed = block["seed"]
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"{source}: '{name}.seed' is {kind(seed)}; expected an integer >= 0.")
        out["seed"] = seed
    if "outages" in block:
        out["outages"] = _outages(block["outages"], f"{name}.outages", source)
    return out


def _outages(value: Any, name: str, source: str) -> tuple[tuple[float, float], ...]:
    if not isinstance(value, list):
        raise ConfigError(
            f"{source}: '{name}' is {kind(value)}; expected a list of [start_s, duration_s]."
        )
    windows = []
    for i, window in enumerate(value):
        ok = (
            isinstance(window, list)
            and len(window) == 2
            and all(is_number(x) for x in window)
            and 0 <= window[0] <= _MAX_S
            and 0 < window[1] <= _MAX_S
        )
        if not ok:
            raise ConfigError(
                f"{source}: '{name}[{i}]' is {json.dumps(window)}; expected [start_s, duration_s] "
                f"with start_s from 0 to {_MAX_S:g} and duration_s above 0."
            )
        windows.append((float(window[0]), float(window[1])))
    return tuple(windows)
