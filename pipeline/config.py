"""The run configuration: `config.json`, environment overrides, validation.

The file keeps the original test's shape, `{"livekit": {"url", "api_key", "api_secret"}}`; every
other field is optional and defaults to the value in the committed `config.json` (`DEFAULTS`):

- `duration_s` (120): how long the two agents talk, in seconds, once both hear each other.
- `mode` ("turns"): `turns` (the Customer speaks, the Support agent answers) or `duplex`
  (both at once).
- `pairs` (1): how many conversations run at once, each in its own room and run folder.
- `out_dir` ("recordings"): where run folders are written (relative to the current directory).
- `connect_timeout_s` (10): bound on reaching the server, creating the room and joining it.
- `tones.customer_hz` (440), `tones.support_hz` (550): each agent's tone.
- `burst.duration_s` (0.3), `burst.period_s` (1.0), `burst.ramp_s` (0.005), `burst.amplitude` (0.5):
  one burst per agent per period; in `turns` mode the Support agent answers half a period later.
- `queue_size_ms` (0): the SDK's `AudioSource` queue; 0 sends each frame at once (the SDK's
  default 1000 ms queue adds 30-50 ms of latency).
- `red` (true): publish each agent's audio with RED (RFC 2198: every packet also carries the
  previous one), as the LiveKit SDKs do by default; the server decides whether it is used. false
  publishes plain Opus.
- `thresholds` ({}): passed to verify through the manifest; an empty object means verify's defaults.
- `signing_key` (null): the Ed25519 private key verify signs with; null means verify's default.
- `impairment` (null): delay, jitter, loss and outages the embedded server applies to each
  direction (see `pipeline.server.impairment`); only a server the run starts itself can apply it.
- `agent` (null): put your own LiveKit agent on the Support side (see `pipeline.agent.spec`):
  `{"name": ..., "cmd": ..., "say": [...], "answer_window_s": ...}`.
- `probe` ({"share": 0.5, "seed": 1, "file": null}): the speech-like probe each agent plays
  between its bursts for verify's quality score (see `pipeline.tones.probe`); null plays none, and
  so
  does a run with an agent under test.

`LIVEKIT_URL`, `LIVEKIT_API_KEY` and `LIVEKIT_API_SECRET` override the file when set and not empty.

`ECHOPROOF_FAULT_SEND_STALL=ROLE:AT_S:DURATION_S` (tests only) holds ROLE's send loop for
DURATION_S seconds AT_S seconds into the talk: a host stall on purpose. It is recorded in the
manifest's config (`faults`), like any other setting; so are `ECHOPROOF_FAULT_PROBE_RATE`
(`pipeline.tones.probe`) and `ECHOPROOF_FAULT_FREEZE` (`pipeline.recording.freeze`: the whole run
stopped once).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from echoproof.contract import SAMPLE_RATE
from pipeline.agent.spec import AgentSpec
from pipeline.agent.spec import parse as parse_agent
from pipeline.errors import ConfigError
from pipeline.recording.freeze import FREEZE_ENV, FreezeFault
from pipeline.server.impairment import Impairments
from pipeline.server.impairment import parse as parse_impairment
from pipeline.tones.probe import DEFAULTS as PROBE_DEFAULTS
from pipeline.tones.probe import ProbeConfig
from pipeline.tones.probe import parse as parse_probe

MODES = ("turns", "duplex")

# The optional fields and their defaults, exactly as in the committed config.json.
DEFAULTS: dict[str, Any] = {
    "duration_s": 120.0,
    "mode": "turns",
    "pairs": 1,
    "out_dir": "recordings",
    "connect_timeout_s": 10.0,
    "tones": {"customer_hz": 440.0, "support_hz": 550.0},
    "burst": {"duration_s": 0.3, "period_s": 1.0, "ramp_s": 0.005, "amplitude": 0.5},
    "queue_size_ms": 0,
    "red": True,
    "thresholds": {},
    "signing_key": None,
    "impairment": None,
    "agent": None,
    "probe": PROBE_DEFAULTS,
}
_LIVEKIT_FIELDS = ("url", "api_key", "api_secret")
_ENV = {"url": "LIVEKIT_URL", "api_key": "LIVEKIT_API_KEY", "api_secret": "LIVEKIT_API_SECRET"}
_URL_SCHEMES = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}
FAULT_ENV = "ECHOPROOF_FAULT_SEND_STALL"


@dataclass(frozen=True)
class SendStall:
    """A fault: `role`'s send loop is held `duration_s` at `at_s` seconds into the talk."""

    role: str
    at_s: float
    duration_s: float

    def public(self) -> dict[str, Any]:
        """The manifest's form."""
        return {"role": self.role, "at_s": self.at_s, "duration_s": self.duration_s}


def _send_stall(text: str) -> SendStall:
    role, _, rest = text.partition(":")
    at, _, duration = rest.partition(":")
    try:
        stall = SendStall(role, float(at), float(duration))
    except ValueError:
        stall = SendStall("", -1.0, -1.0)
    if stall.role not in ("customer", "support") or stall.at_s < 0 or stall.duration_s <= 0:
        raise ConfigError(
            f"{FAULT_ENV} is {text!r}; expected ROLE:AT_S:DURATION_S with ROLE customer or "
            "support, e.g. support:5:0.5."
        )
    return stall


@dataclass(frozen=True)
class Config:
    """One validated configuration; `public()` is the form safe to print or write (no secrets)."""

    url: str
    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)
    duration_s: float = DEFAULTS["duration_s"]
    mode: str = DEFAULTS["mode"]
    pairs: int = DEFAULTS["pairs"]
    out_dir: Path = Path(DEFAULTS["out_dir"])
    connect_timeout_s: float = DEFAULTS["connect_timeout_s"]
    customer_hz: float = DEFAULTS["tones"]["customer_hz"]
    support_hz: float = DEFAULTS["tones"]["support_hz"]
    burst_s: float = DEFAULTS["burst"]["duration_s"]
    period_s: float = DEFAULTS["burst"]["period_s"]
    ramp_s: float = DEFAULTS["burst"]["ramp_s"]
    amplitude: float = DEFAULTS["burst"]["amplitude"]
    queue_size_ms: int = DEFAULTS["queue_size_ms"]
    red: bool = DEFAULTS["red"]
    thresholds: Mapping[str, Any] = field(default_factory=dict)
    signing_key: Path | None = None
    impairment: Impairments | None = None
    agent: AgentSpec | None = None
    send_stall: SendStall | None = None
    freeze: FreezeFault | None = None
    probe: ProbeConfig | None = None
    source: str = "config.json"

    def __post_init__(self) -> None:
        _check(self)

    @property
    def ws_url(self) -> str:
        """The signalling URL the SDK joins (http(s) spelled as ws(s))."""
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(scheme=_URL_SCHEMES[parts.scheme]))

    @property
    def http_url(self) -> str:
        """The base URL of the server API (Twirp RoomService)."""
        parts = urlsplit(self.ws_url)
        return urlunsplit(parts._replace(scheme="https" if parts.scheme == "wss" else "http"))

    @property
    def host(self) -> str:
        """The server's host name or address."""
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        """The server's port (the scheme's default when the URL names none)."""
        parts = urlsplit(self.ws_url)
        return parts.port or (443 if parts.scheme == "wss" else 80)

    @property
    def is_loopback(self) -> bool:
        """True when the URL points at this machine (then an embedded server may be started)."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def replace(self, **changes: Any) -> Config:
        """A copy with some fields changed, validated again (command-line options use this)."""
        return dataclasses.replace(self, **changes)

    def public(self) -> dict[str, Any]:
        """The effective configuration in the file's shape, with api_key and api_secret removed."""
        return {
            "livekit": {"url": self.url},
            "duration_s": self.duration_s,
            "mode": self.mode,
            "pairs": self.pairs,
            "out_dir": str(self.out_dir),
            "connect_timeout_s": self.connect_timeout_s,
            "tones": {"customer_hz": self.customer_hz, "support_hz": self.support_hz},
            "burst": {
                "duration_s": self.burst_s,
                "period_s": self.period_s,
                "ramp_s": self.ramp_s,
                "amplitude": self.amplitude,
            },
            "queue_size_ms": self.queue_size_ms,
            "red": self.red,
            "thresholds": dict(self.thresholds),
            "signing_key": None if self.signing_key is None else str(self.signing_key),
            "impairment": None if self.impairment is None else self.impairment.public(),
            "agent": None if self.agent is None else self._agent_public(),
            "probe": None if self.probe is None else self.probe.public(),
            **self._faults(),
        }

    def _agent_public(self) -> dict[str, Any]:
        """The agent block, its command with the API key and secret replaced (a user may have
        written them into it)."""
        assert self.agent is not None
        block = self.agent.public()
        cmd = block["cmd"]
        for secret in (self.api_secret, self.api_key):
            if cmd is not None and secret:
                cmd = cmd.replace(secret, "<redacted>")
        return {**block, "cmd": cmd}

    def _faults(self) -> dict[str, Any]:
        """`{"faults": ...}` when a fault is injected (tests), else nothing."""
        faults: dict[str, Any] = {}
        if self.send_stall is not None:
            faults["send_stall"] = self.send_stall.public()
        if self.freeze is not None:
            faults["freeze"] = self.freeze.public()
        if self.probe is not None and self.probe.rate_fault is not None:
            faults["probe_rate"] = self.probe.rate_fault.public()
        return {"faults": faults} if faults else {}


def load_config(path: Path | str, env: Mapping[str, str] | None = None) -> Config:
    """Read, validate and return the config file at `path`, with LIVEKIT_* overrides from `env`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist; pass --config PATH.") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory; expected a JSON file.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read ({exc}).") from None
    return parse_config(text, source=str(path), env=env)


def parse_config(
    text: str, *, source: str = "config.json", env: Mapping[str, str] | None = None
) -> Config:
    """Validate config JSON text; `source` names the file in error messages."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{source} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."
        ) from None
    return from_dict(data, source=source, env=env)


def from_dict(
    data: Any, *, source: str = "config.json", env: Mapping[str, str] | None = None
) -> Config:
    """Validate a decoded config object; see the module docstring for every field."""
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source} holds {_kind(data)}; expected a JSON object with a 'livekit' block."
        )
    _unknown(data, [*DEFAULTS, "livekit"], "", source)
    livekit = data.get("livekit")
    if livekit is None:
        raise ConfigError(
            f"{source} has no 'livekit' block; expected "
            '{"livekit": {"url": ..., "api_key": ..., "api_secret": ...}}.'
        )
    if not isinstance(livekit, dict):
        raise ConfigError(f"{source}: 'livekit' is {_kind(livekit)}; expected an object.")
    _unknown(livekit, _LIVEKIT_FIELDS, "livekit.", source)
    env = {} if env is None else env
    creds: dict[str, str] = {}
    for name in _LIVEKIT_FIELDS:
        from_env = env.get(_ENV[name], "")
        if from_env:
            creds[name] = from_env
            continue
        if name not in livekit:
            raise ConfigError(
                f"{source} has no 'livekit.{name}' and {_ENV[name]} is not set; set one of them."
            )
        value = livekit[name]
        if not isinstance(value, str) or not value:
            # Never echo a credential, even a malformed one.
            shown = _kind(value) if name == "url" else _kind(value, hide=True)
            raise ConfigError(
                f"{source}: 'livekit.{name}' is {shown}; expected a non-empty string."
            )
        creds[name] = value

    def get(name: str) -> Any:
        return data.get(name, DEFAULTS[name])

    tones = _block(data, "tones", source)
    burst = _block(data, "burst", source)
    signing_key = get("signing_key")
    impairment = get("impairment")
    agent = get("agent")
    probe = get("probe")
    return _build(
        source,
        url=creds["url"],
        api_key=creds["api_key"],
        api_secret=creds["api_secret"],
        duration_s=_number(get("duration_s"), "duration_s", source),
        mode=_string(get("mode"), "mode", source),
        pairs=_integer(get("pairs"), "pairs", source),
        out_dir=Path(_string(get("out_dir"), "out_dir", source)),
        connect_timeout_s=_number(get("connect_timeout_s"), "connect_timeout_s", source),
        customer_hz=_number(tones["customer_hz"], "tones.customer_hz", source),
        support_hz=_number(tones["support_hz"], "tones.support_hz", source),
        burst_s=_number(burst["duration_s"], "burst.duration_s", source),
        period_s=_number(burst["period_s"], "burst.period_s", source),
        ramp_s=_number(burst["ramp_s"], "burst.ramp_s", source),
        amplitude=_number(burst["amplitude"], "burst.amplitude", source),
        queue_size_ms=_integer(get("queue_size_ms"), "queue_size_ms", source),
        red=_boolean(get("red"), "red", source),
        thresholds=_object(get("thresholds"), "thresholds", source),
        signing_key=None
        if signing_key is None
        else Path(_string(signing_key, "signing_key", source)),
        impairment=None if impairment is None else parse_impairment(impairment, source),
        agent=None if agent is None else parse_agent(agent, source),
        send_stall=_send_stall(env[FAULT_ENV]) if env.get(FAULT_ENV) else None,
        freeze=FreezeFault.parse(env[FREEZE_ENV]) if env.get(FREEZE_ENV) else None,
        # An agent under test hears the Customer's turns, never our probe.
        probe=None if probe is None or agent is not None else parse_probe(probe, source, env),
    )


def _build(source: str, **fields: Any) -> Config:
    return Config(source=source, **fields)


def _check(c: Config) -> None:
    """Raise ConfigError naming the first field whose value cannot make a run."""
    src = c.source
    parts = urlsplit(c.url)
    if parts.scheme not in _URL_SCHEMES or not parts.hostname:
        raise ConfigError(
            f"{src}: 'livekit.url' is {c.url!r}; expected a ws://, wss://, http:// or https:// URL "
            "with a host, e.g. ws://127.0.0.1:7880."
        )
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ConfigError(f"{src}: 'livekit.url' {c.url!r} has an invalid port.") from None

    def need(ok: bool, name: str, value: object, expected: str) -> None:
        if not ok:
            raise ConfigError(f"{src}: '{name}' is {value!r}; expected {expected}.")

    need(0 < c.duration_s <= 86_400, "duration_s", c.duration_s, "seconds in (0, 86400]")
    need(c.mode in MODES, "mode", c.mode, "'turns' or 'duplex'")
    need(1 <= c.pairs <= 256, "pairs", c.pairs, "an integer from 1 to 256")
    need(str(c.out_dir) != "", "out_dir", str(c.out_dir), "a folder path")
    need(
        0 < c.connect_timeout_s <= 600,
        "connect_timeout_s",
        c.connect_timeout_s,
        "seconds in (0, 600]",
    )
    nyquist = SAMPLE_RATE / 2
    for name, hz in (("tones.customer_hz", c.customer_hz), ("tones.support_hz", c.support_hz)):
        need(20 <= hz < nyquist, name, hz, f"a frequency in Hz from 20 to below {nyquist:g}")
    need(
        abs(c.customer_hz - c.support_hz) >= 50,
        "tones.support_hz",
        c.support_hz,
        "a tone at least 50 Hz away from tones.customer_hz",
    )
    need(0 < c.ramp_s <= 0.1, "burst.ramp_s", c.ramp_s, "seconds in (0, 0.1]")
    need(
        c.burst_s >= 2 * c.ramp_s + 0.02, "burst.duration_s", c.burst_s, "at least 2 ramps + 20 ms"
    )
    # In turns mode two bursts share one period; leave a gap of 100 ms after each burst.
    share = 2 if c.mode == "turns" else 1
    need(
        c.period_s >= share * (c.burst_s + 0.1),
        "burst.period_s",
        c.period_s,
        f"at least {share} x (burst.duration_s + 0.1 s) in {c.mode} mode",
    )
    need(c.period_s < c.duration_s, "burst.period_s", c.period_s, "less than duration_s")
    need(0 < c.amplitude <= 1, "burst.amplitude", c.amplitude, "a value in (0, 1]")
    if c.agent is not None:
        # One dispatched agent per room, and it answers turns: the tone pairs' options do not apply.
        need(c.pairs == 1, "pairs", c.pairs, "1 with an agent under test")
        need(c.mode == "turns", "mode", c.mode, "'turns' with an agent under test")
    need(
        0 <= c.queue_size_ms <= 10_000,
        "queue_size_ms",
        c.queue_size_ms,
        "milliseconds in [0, 10000]",
    )


def _block(data: dict[str, Any], name: str, source: str) -> dict[str, Any]:
    value = data.get(name, DEFAULTS[name])
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: '{name}' is {_kind(value)}; expected an object.")
    _unknown(value, DEFAULTS[name], f"{name}.", source)
    return {**DEFAULTS[name], **value}


def _unknown(block: dict[str, Any], known: Any, prefix: str, source: str) -> None:
    extra = sorted(set(block) - set(known))
    if extra:
        raise ConfigError(
            f"{source} has an unknown field '{prefix}{extra[0]}'; expected one of "
            + ", ".join(f"'{prefix}{k}'" for k in known)
            + "."
        )


def _number(value: Any, name: str, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{source}: '{name}' is {_kind(value)}; expected a number.")
    return float(value)


def _integer(value: Any, name: str, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{source}: '{name}' is {_kind(value)}; expected an integer.")
    return value


def _boolean(value: Any, name: str, source: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{source}: '{name}' is {_kind(value)}; expected true or false.")
    return value


def _string(value: Any, name: str, source: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{source}: '{name}' is {_kind(value)}; expected a non-empty string.")
    return value


def _object(value: Any, name: str, source: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: '{name}' is {_kind(value)}; expected an object.")
    return dict(value)


def _kind(value: Any, *, hide: bool = False) -> str:
    """How a JSON value reads in an error message: its type and, unless hidden, the value."""
    if value is None:
        return "null"
    if hide:
        return {bool: "a boolean", int: "a number", float: "a number", str: "an empty string"}.get(
            type(value), "a list" if isinstance(value, list) else "an object"
        )
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, int | float):
        return f"{value!r} (a number)"
    if isinstance(value, str):
        return f"{value!r} (a string)" if value else "an empty string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
