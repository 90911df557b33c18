"""The run configuration: `config.json`, environment overrides, validation.

The file keeps the original test's shape, `{"livekit": {"url", "api_key", "api_secret"}}`; every
other field is optional and defaults to the value in the committed `config.json` (`DEFAULTS`):

- `duration_s` (120): how long the two speakers talk, in seconds, once both hear each other.
- `mode` ("turns"): `turns` (the Customer speaks, the Support speaker answers) or `duplex`
  (both at once).
- `pairs` (1): how many conversations run at once, each in its own room and run folder; with an
  agent under test, as many callers, each with its own dispatch of the agent.
- `join_ramp_s` (0): spread the conversations' joins evenly over this many seconds (the i-th of
  N joins at i x join_ramp_s / N and starts talking as soon as it is ready); 0 joins them all at
  once and starts them at one instant once all have joined (`pipeline.gate.StartGate`).
- `out_dir` ("recordings"): where run folders are written (relative to the current directory).
- `connect_timeout_s` (10): bound on reaching the server, creating the room and joining it.
- `tones.customer_hz` (440), `tones.support_hz` (550): each speaker's tone.
- `burst.duration_s` (0.3), `burst.period_s` (1.0), `burst.ramp_s` (0.005), `burst.amplitude` (0.5):
  one burst per speaker per period; in `turns` mode the Support speaker answers half a period
  later.
- `queue_size_ms` (0): the SDK's `AudioSource` queue; 0 sends each frame at once (the SDK's
  default 1000 ms queue adds 30-50 ms of latency).
- `red` (true): publish each speaker's audio with RED (RFC 2198: every packet also carries the
  previous one), as the LiveKit SDKs do by default; the server decides whether it is used. false
  publishes plain Opus.
- `thresholds` ({}): passed to verify through the manifest; an empty object means verify's defaults.
- `signing_key` (null): the Ed25519 private key verify signs with; null means verify's default.
- `impairment` (null): delay, jitter, loss and outages the embedded server applies to each
  direction (`pipeline.config.impairment`); only a server the run starts itself can apply it.
- `agent` (null): put your own LiveKit agent on the Support side (`pipeline.config.agent`):
  `{"name": ..., "cmd": ..., "say": [...], "answer_window_s": ...}`.
- `probe` ({"share": 0.5, "seed": 1, "file": null}): the speech-like probe each speaker plays
  between its bursts for verify's quality score (`pipeline.config.probe`); null plays none, and
  so does a run with an agent under test.
- `ray` ({"cpus_per_conversation": 0.25, "lost_after_s": 20}): what a run on a Ray cluster
  (`--ray`) reserves per conversation and when it gives up on a silent node
  (`pipeline.config.cluster`).

`LIVEKIT_URL`, `LIVEKIT_API_KEY` and `LIVEKIT_API_SECRET` override the file when set and not empty.
The fault switches (`ECHOPROOF_FAULT_*`, tests only: `pipeline.config.faults`) are read from the
same environment and recorded in the manifest's config (`faults`), like any other setting.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from echoproof.contract import SAMPLE_RATE
from pipeline.config import agent as agent_block
from pipeline.config import cluster as cluster_block
from pipeline.config import document
from pipeline.config import impairment as impairment_block
from pipeline.config import probe as probe_block
from pipeline.config.agent import AgentSpec
from pipeline.config.cluster import ClusterConfig
from pipeline.config.faults import FREEZE_ENV, SEND_STALL_ENV, FreezeFault, SendStall
from pipeline.config.fields import boolean, integer, kind, number, obj, string, unknown
from pipeline.config.impairment import Impairments
from pipeline.config.probe import ProbeConfig
from pipeline.errors import ConfigError

MODES = ("turns", "duplex")

# The optional fields and their defaults, exactly as in the committed config.json.
DEFAULTS: dict[str, Any] = {
    "duration_s": 120.0,
    "mode": "turns",
    "pairs": 1,
    "join_ramp_s": 0.0,
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
    "probe": probe_block.DEFAULTS,
    "ray": cluster_block.DEFAULTS,
}
_LIVEKIT_FIELDS = ("url", "api_key", "api_secret")
_ENV = {"url": "LIVEKIT_URL", "api_key": "LIVEKIT_API_KEY", "api_secret": "LIVEKIT_API_SECRET"}
_URL_SCHEMES = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}


@dataclass(frozen=True)
class Config:
    """One validated configuration; `public()` is the form safe to print or write (no secrets)."""

    url: str
    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)
    duration_s: float = DEFAULTS["duration_s"]
    mode: str = DEFAULTS["mode"]
    pairs: int = DEFAULTS["pairs"]
    join_ramp_s: float = DEFAULTS["join_ramp_s"]
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
    ray: ClusterConfig = field(default_factory=ClusterConfig)
    source: str = "config.json"
    # Not a setting: the id every conversation of one run shares (the manifest's `fleet`), given
    # by `pipeline.run.capture`; verify summarises a fleet's run folders together.
    fleet_id: str | None = None

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
            "join_ramp_s": self.join_ramp_s,
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
            "ray": self.ray.public(),
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
    return parse_config(
        document.read_text(path, "config file", "--config"), source=str(path), env=env
    )


def parse_config(
    text: str, *, source: str = "config.json", env: Mapping[str, str] | None = None
) -> Config:
    """Validate config JSON text; `source` names the file in error messages."""
    return from_dict(document.decode_json(text, source), source=source, env=env)


def from_dict(
    data: Any, *, source: str = "config.json", env: Mapping[str, str] | None = None
) -> Config:
    """Validate a decoded config object; see the module docstring for every field."""
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source} holds {kind(data)}; expected a JSON object with a 'livekit' block."
        )
    unknown(data, [*DEFAULTS, "livekit"], "", source)
    env = {} if env is None else env
    creds = _credentials(data.get("livekit"), env, source)

    def get(name: str) -> Any:
        return data.get(name, DEFAULTS[name])

    tones = _block(data, "tones", source)
    burst = _block(data, "burst", source)
    signing_key, agent, probe = get("signing_key"), get("agent"), get("probe")
    return Config(
        **creds,
        duration_s=number(get("duration_s"), "duration_s", source),
        mode=string(get("mode"), "mode", source),
        pairs=integer(get("pairs"), "pairs", source),
        join_ramp_s=number(get("join_ramp_s"), "join_ramp_s", source),
        out_dir=Path(string(get("out_dir"), "out_dir", source)),
        connect_timeout_s=number(get("connect_timeout_s"), "connect_timeout_s", source),
        customer_hz=number(tones["customer_hz"], "tones.customer_hz", source),
        support_hz=number(tones["support_hz"], "tones.support_hz", source),
        burst_s=number(burst["duration_s"], "burst.duration_s", source),
        period_s=number(burst["period_s"], "burst.period_s", source),
        ramp_s=number(burst["ramp_s"], "burst.ramp_s", source),
        amplitude=number(burst["amplitude"], "burst.amplitude", source),
        queue_size_ms=integer(get("queue_size_ms"), "queue_size_ms", source),
        red=boolean(get("red"), "red", source),
        thresholds=dict(obj(get("thresholds"), "thresholds", source)),
        signing_key=None
        if signing_key is None
        else Path(string(signing_key, "signing_key", source)),
        impairment=None
        if get("impairment") is None
        else impairment_block.parse(get("impairment"), source),
        agent=None if agent is None else agent_block.parse(agent, source),
        send_stall=SendStall.parse(env[SEND_STALL_ENV]) if env.get(SEND_STALL_ENV) else None,
        freeze=FreezeFault.parse(env[FREEZE_ENV]) if env.get(FREEZE_ENV) else None,
        # An agent under test hears the Customer's turns, never our probe.
        probe=None if probe is None or agent is not None else probe_block.parse(probe, source, env),
        ray=cluster_block.parse(get("ray"), source),
        source=source,
    )


def _credentials(livekit: Any, env: Mapping[str, str], source: str) -> dict[str, str]:
    """The `livekit` block's url, api_key and api_secret, each overridden by its LIVEKIT_*."""
    if livekit is None:
        raise ConfigError(
            f"{source} has no 'livekit' block; expected "
            '{"livekit": {"url": ..., "api_key": ..., "api_secret": ...}}.'
        )
    if not isinstance(livekit, dict):
        raise ConfigError(f"{source}: 'livekit' is {kind(livekit)}; expected an object.")
    unknown(livekit, _LIVEKIT_FIELDS, "livekit.", source)
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
            shown = kind(value) if name == "url" else kind(value, hide=True)
            raise ConfigError(
                f"{source}: 'livekit.{name}' is {shown}; expected a non-empty string."
            )
        creds[name] = value
    return creds


def _check(c: Config) -> None:
    """Raise ConfigError naming the first field whose value cannot make a run."""
    src = c.source
    _check_url(c.url, src)

    def need(ok: bool, name: str, value: object, expected: str) -> None:
        if not ok:
            raise ConfigError(f"{src}: '{name}' is {value!r}; expected {expected}.")

    need(0 < c.duration_s <= 86_400, "duration_s", c.duration_s, "seconds in (0, 86400]")
    need(c.mode in MODES, "mode", c.mode, "'turns' or 'duplex'")
    need(1 <= c.pairs <= 256, "pairs", c.pairs, "an integer from 1 to 256")
    need(0 <= c.join_ramp_s <= 3600, "join_ramp_s", c.join_ramp_s, "seconds in [0, 3600]")
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
    if c.agent is not None:  # the agent answers turns: both talking at once does not apply
        need(c.mode == "turns", "mode", c.mode, "'turns' with an agent under test")
    need(
        0 <= c.queue_size_ms <= 10_000,
        "queue_size_ms",
        c.queue_size_ms,
        "milliseconds in [0, 10000]",
    )


def _check_url(url: str, src: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in _URL_SCHEMES or not parts.hostname:
        raise ConfigError(
            f"{src}: 'livekit.url' is {url!r}; expected a ws://, wss://, http:// or https:// URL "
            "with a host, e.g. ws://127.0.0.1:7880."
        )
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ConfigError(f"{src}: 'livekit.url' {url!r} has an invalid port.") from None


def _block(data: dict[str, Any], name: str, source: str) -> dict[str, Any]:
    value = obj(data.get(name, DEFAULTS[name]), name, source)
    unknown(value, DEFAULTS[name], f"{name}.", source)
    return {**DEFAULTS[name], **value}
