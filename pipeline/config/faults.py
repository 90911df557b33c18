"""The faults a test or a benchmark injects on purpose, each switched on by an environment variable.

- `ECHOPROOF_FAULT_SEND_STALL=ROLE:AT_S:DURATION_S` holds ROLE's send loop for DURATION_S seconds
  AT_S seconds into the talk: a host stall on purpose.
- `ECHOPROOF_FAULT_PROBE_RATE=ROLE:AUDIO_HZ:PLAYED_HZ` makes ROLE play its probe audio, made at
  AUDIO_HZ, as if it were PLAYED_HZ (e.g. `support:24000:22050`, the agents' TTS bug): each
  piece comes out pitched and slowed by PLAYED_HZ / AUDIO_HZ (`pipeline.tones.probe`).
- `ECHOPROOF_FAULT_FREEZE=AT_S:DURATION_S` stops every process of the run AT_S seconds into the
  talk for DURATION_S (`pipeline.recording.freeze`).

Each is recorded in the manifest's `config.faults`, like any other setting; a malformed one is a
ConfigError in one sentence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from echoproof.contract import ROLES
from pipeline.errors import ConfigError

SEND_STALL_ENV = "ECHOPROOF_FAULT_SEND_STALL"
RATE_FAULT_ENV = "ECHOPROOF_FAULT_PROBE_RATE"
FREEZE_ENV = "ECHOPROOF_FAULT_FREEZE"


@dataclass(frozen=True)
class SendStall:
    """A fault: `role`'s send loop is held `duration_s` at `at_s` seconds into the talk."""

    role: str
    at_s: float
    duration_s: float

    def public(self) -> dict[str, Any]:
        """The manifest's form."""
        return {"role": self.role, "at_s": self.at_s, "duration_s": self.duration_s}

    @classmethod
    def parse(cls, text: str) -> SendStall:
        """`ROLE:AT_S:DURATION_S`; ConfigError in one sentence otherwise."""
        role, _, rest = text.partition(":")
        at, _, duration = rest.partition(":")
        try:
            stall = cls(role, float(at), float(duration))
        except ValueError:
            stall = cls("", -1.0, -1.0)
        if stall.role not in ROLES or stall.at_s < 0 or stall.duration_s <= 0:
            raise ConfigError(
                f"{SEND_STALL_ENV} is {text!r}; expected ROLE:AT_S:DURATION_S with ROLE customer "
                "or support, e.g. support:5:0.5."
            )
        return stall


@dataclass(frozen=True)
class RateFault:
    """A fault: `role` plays probe audio made at `audio_hz` as if it were `played_hz`."""

    role: str
    audio_hz: int
    played_hz: int

    def public(self) -> dict[str, Any]:
        """The manifest's form."""
        return {"role": self.role, "audio_hz": self.audio_hz, "played_hz": self.played_hz}

    @classmethod
    def parse(cls, text: str) -> RateFault:
        """`ROLE:AUDIO_HZ:PLAYED_HZ`; ConfigError in one sentence otherwise."""
        parts = text.split(":")
        try:
            fault = cls(parts[0], int(parts[1]), int(parts[2]))
            ok = len(parts) == 3 and fault.role in ROLES
            ok = ok and 8000 <= fault.audio_hz <= 192_000 and 8000 <= fault.played_hz <= 192_000
        except (ValueError, IndexError):
            ok = False
        if not ok:
            raise ConfigError(
                f"{RATE_FAULT_ENV} is {text!r}; expected ROLE:AUDIO_HZ:PLAYED_HZ with ROLE "
                "customer or support, e.g. support:24000:22050."
            )
        return fault


@dataclass(frozen=True)
class FreezeFault:
    """Stop the whole run `at_s` seconds into the talk for `duration_s`."""

    at_s: float
    duration_s: float

    def public(self) -> dict[str, Any]:
        """The manifest's form."""
        return {"at_s": self.at_s, "duration_s": self.duration_s}

    @classmethod
    def parse(cls, text: str) -> FreezeFault:
        """`AT_S:DURATION_S`; ConfigError in one sentence otherwise."""
        at, _, duration = text.partition(":")
        try:
            fault = cls(float(at), float(duration))
        except ValueError:
            fault = cls(-1.0, -1.0)
        if not (0 <= fault.at_s < 1e6 and 0 < fault.duration_s <= 60):
            raise ConfigError(
                f"{FREEZE_ENV} is {text!r}; expected AT_S:DURATION_S (seconds into the talk, "
                "then how long, at most 60), e.g. 15:0.5."
            )
        return fault
