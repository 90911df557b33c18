"""A capture run: the server, the rooms, one or more conversations, their evidence.

`capture(config)` starts the embedded server when the URL is a loopback address nobody listens
on, creates one room per conversation through the server API, runs every conversation at once and
returns one `Outcome` per run folder. A conversation never raises for a run-time fault: it ends
with status `complete`, `interrupted` (the `StopSignal` was set) or `failed` (lost the server, was
removed from the room by it, could not join, ran past its time bound), and its manifest says so.
Only faults before any run folder exists (server unreachable, credentials refused) raise
`ConnectError`; impairment asked of a server the run did not start raises `ConfigError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TextIO, TypeVar

import aiohttp
from jwt.warnings import InsecureKeyLengthWarning
from livekit import api
from loguru import logger

import dsp
from aiotasks import cancel_and_wait
from pipeline import evidence, realtime
from pipeline._server import EmbeddedServer
from pipeline.agent import Agent
from pipeline.config import Config
from pipeline.conversation import FRAME_SAMPLES, SAMPLE_RATE, Voice, schedule, total_frames
from pipeline.errors import ConfigError, ConnectError, PipelineError
from pipeline.host import HostMonitor
from pipeline.impairment import IDENTITY_PREFIXES
from pipeline.live import Counters, LiveView, PairView

T = TypeVar("T")
ROLES = ("customer", "support")
# RTC statistics are sampled this often during a conversation (and once at the end).
STATS_EVERY_S = 5.0
# After the last frame is sent, wait at least TAIL_MIN_S and at most TAIL_MAX_S for the rest
# (plus the longest delay an impairment adds, see tail_max_s).
TAIL_MIN_S = 0.5
TAIL_MAX_S = 2.0
# The senders start this long after both agents hear each other (both from the same instant);
# with several conversations, SETTLE_S after the last pair hears each other (see StartGate).
START_DELAY_S = 0.2
SETTLE_S = 2.0
# After a settled start, no RTC statistics for this long: the SDK (1.2.1) can abort the process
# in get_rtc_stats soon after a track's first audio when the track sat silent for over ~0.5 s
# (2 of 3 tries after 1 s, 3 of 3 after 2 s; never with 0.3 s). Sampling every 5 s from the
# start has never hit it.
STATS_GRACE_S = 5.0


class StopSignal:
    """Asks every conversation to stop early (Ctrl-C, SIGTERM); the first reason given is kept."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.reason: str | None = None

    def set(self, reason: str) -> None:
        """Stop, because of `reason` (one sentence)."""
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    def is_set(self) -> bool:
        """True once stopping was asked for."""
        return self._event.is_set()

    async def wait(self) -> None:
        """Return once stopping was asked for."""
        await self._event.wait()


class Begins(Protocol):
    """Told when a conversation starts talking: the live view, or a worker's report."""

    def begin(self, start_ns: int, duration_s: float) -> None: ...


class Gate(Protocol):
    """Gives a conversation its start instant: `StartGate`, or a worker's parent."""

    # True when talking may start long after `ready()` (several conversations): see STATS_GRACE_S.
    settles: bool

    def ready(self) -> Awaitable[int]: ...

    def leave(self) -> None: ...


class StartGate:
    """One start instant for every conversation of a run, once each has joined or given up.

    Joining is CPU-heavy, and the SDK goes on working for a second or two after a participant
    hears the other (ICE gathering: ~7,500 native log records in its first second). A
    conversation that talks while others join fills its jitter buffers under that load, and
    they keep the extra delay for seconds. Measured with 5 pairs on 2 cores: started one after
    another, or all 0.2 s after the last had joined, the first 3 bursts of each direction took
    100-155 ms and the rest ~55 ms; starting SETTLE_S after the last join, 50-62 ms from the
    first. Sending silence while waiting (so that no track idles, see STATS_GRACE_S) was worse:
    the streams then ran through the other pairs' joins, and their jitter buffers grew to
    100-340 ms (870 ms with a quiet tone instead of silence) before shrinking over ~5 s.
    A lone conversation has only its own join to wait for: START_DELAY_S.
    Each conversation calls `ready()` (then waits) or, if it failed before, `leave()`: once each.
    """

    def __init__(self, conversations: int) -> None:
        self._waiting = conversations
        self.settles = conversations > 1
        self._delay_s = SETTLE_S if self.settles else START_DELAY_S
        self._open = asyncio.Event()
        self.start_ns = 0

    def ready(self) -> Awaitable[int]:
        """This conversation can talk: the shared start instant, once every other is ready too."""
        self.leave()  # counted now, not when the caller first awaits
        return self._start()

    async def _start(self) -> int:
        await self._open.wait()
        return self.start_ns

    def leave(self) -> None:
        """This conversation will not talk: do not wait for it."""
        self._waiting -= 1
        if self._waiting <= 0 and not self._open.is_set():
            self.start_ns = time.monotonic_ns() + int(self._delay_s * 1e9)
            self._open.set()


@dataclass
class Outcome:
    """One conversation's result: its run folder, how it ended, and each agent's counters."""

    run_id: str
    run_dir: Path
    status: str
    reason: str | None
    customer: Counters
    support: Counters
    # Filled in by verification (pipeline.__main__), which runs after capture.
    passed: bool | None = None
    failures: list[str] = field(default_factory=list)
    verdict: str | None = None  # passed, failed, inconclusive
    verdict_reason: str | None = None  # inconclusive: the host stall


def run_bound_s(config: Config) -> float:
    """The longest one conversation may take, from joining to its evidence being closed."""
    return config.duration_s + 3 * config.connect_timeout_s + tail_max_s(config) + 30.0


def tail_max_s(config: Config) -> float:
    """The longest wait for the last frames: TAIL_MAX_S, plus the impairment's delay and jitter."""
    imp = config.impairment
    if imp is None:
        return TAIL_MAX_S
    links = (imp.customer_to_support, imp.support_to_customer)
    return TAIL_MAX_S + max(link.delay_ms + link.jitter_ms for link in links) / 1000


async def capture(
    config: Config,
    *,
    stop: StopSignal | None = None,
    live_stream: TextIO | None = None,
    processes: bool = False,
) -> list[Outcome]:
    """Run `config.pairs` conversations at once and return their outcomes, in run order.

    With `processes`, each conversation runs in a worker process of its own (`pipeline._worker`):
    one event loop and one GIL per conversation, so many pairs keep real time. Without it, every
    conversation shares this process's event loop (fine for one or two pairs, and for tests).
    """
    stop = stop or StopSignal()
    async with embedded_server(config) as server_pid:
        embedded = server_pid is not None
        run_ids = _run_ids(config.pairs)
        await _create_rooms(config, [_room_name(r) for r in run_ids])
        if processes:
            from pipeline import _worker

            outcomes = await _worker.run_conversations(
                config, run_ids, server_pid=server_pid, stop=stop, live_stream=live_stream
            )
            await _delete_rooms(config, [_room_name(r) for r in run_ids])
            return outcomes
        conversations = [
            Conversation(config, run_id, embedded=embedded, server_pid=server_pid)
            for run_id in run_ids
        ]
        await run_all(conversations, stop, live_stream)
        await _delete_rooms(config, [_room_name(r) for r in run_ids])
    return [c.outcome for c in conversations]


class Unit(Protocol):
    """A conversation, run here (`Conversation`) or in a worker (`_worker.WorkerProcess`)."""

    run_id: str
    view: PairView

    async def run(self, stop: StopSignal, view: Begins, gate: Gate) -> None: ...


async def run_all(units: Sequence[Unit], stop: StopSignal, live_stream: TextIO | None) -> None:
    """Run every unit to its end from one start instant, all in one live view, finished after."""
    gate = StartGate(len(units))
    view = LiveView([u.view for u in units], stream=live_stream)
    view_task = asyncio.create_task(view.run(), name="live-view")
    try:
        async with asyncio.TaskGroup() as tg:
            for u in units:
                tg.create_task(u.run(stop, view, gate), name=f"conversation-{u.run_id}")
    finally:
        await cancel_and_wait(view_task)
        view.finish()


def _run_ids(n: int) -> list[str]:
    ids: set[str] = set()
    while len(ids) < n:
        ids.add(evidence.new_run_id())
    return sorted(ids)


def _room_name(run_id: str) -> str:
    return f"echoproof-{run_id}"


# -- the server ------------------------------------------------------------------------------------


async def _listening(host: str, port: int) -> bool:
    try:
        async with asyncio.timeout(1.0):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


@contextlib.asynccontextmanager
async def embedded_server(config: Config) -> AsyncIterator[int | None]:
    """Start the embedded server on the URL's port when it is a loopback address nobody listens on.

    Yields the server's process id when this run started (and will stop) the server itself, else
    None. The server runs in a child process (see pipeline._server for why).
    """
    host = "127.0.0.1" if config.host == "localhost" else config.host
    if not config.is_loopback or await _listening(host, config.port):
        if config.impairment is not None and not config.impairment.is_none:
            # Only our own server applies it; a run on any other would claim a network it had not.
            raise ConfigError(
                f"{config.source}: 'impairment' needs the embedded server, but {config.ws_url} is "
                "an external server (not started by this run); remove 'impairment' or set "
                "livekit.url to a free loopback port."
            )
        yield None
        return
    logger.info("nothing listens on {}:{}; starting the embedded server there", host, config.port)
    async with EmbeddedServer(
        host,
        config.port,
        config.api_key,
        config.api_secret,
        start_timeout_s=config.connect_timeout_s + 20,  # the child imports aiortc first
        impairment=config.impairment,
    ) as server:
        logger.info("embedded server ready at {}", server.url)
        if config.impairment is not None and not config.impairment.is_none:
            logger.info("the embedded server impairs the audio: {}", config.impairment.public())
        yield server.pid


def _api(config: Config) -> api.LiveKitAPI:
    # A token of our own (room_create covers create and delete) rather than key and secret, so the
    # SDK does not sign tokens itself: signing is done once, in _sign.
    grants = api.VideoGrants(room_create=True)
    token = _sign(api.AccessToken(config.api_key, config.api_secret).with_grants(grants))
    timeout = aiohttp.ClientTimeout(total=config.connect_timeout_s)
    return api.LiveKitAPI.with_token(token, config.http_url, timeout=timeout)


def _sign(token: api.AccessToken) -> str:
    with warnings.catch_warnings():
        # The embedded server's default secret ("secret") is short; PyJWT warns about every token.
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return token.to_jwt()


async def _create_rooms(config: Config, names: list[str]) -> None:
    """Create every room through the server API; ConnectError says why the server could not."""
    where = config.http_url
    try:
        async with asyncio.timeout(config.connect_timeout_s), _api(config) as lk:
            for name in names:
                await lk.room.create_room(
                    api.CreateRoomRequest(
                        name=name,
                        empty_timeout=int(config.connect_timeout_s) + 30,
                        departure_timeout=10,
                        max_participants=2,
                    )
                )
    except TimeoutError:
        raise ConnectError(
            f"the LiveKit server at {where} did not answer within {config.connect_timeout_s:g} s; "
            "check livekit.url and that the server is running."
        ) from None
    except aiohttp.ClientConnectorError as exc:
        raise ConnectError(
            f"could not reach the LiveKit server at {where} ({exc.strerror or exc.os_error}); "
            "check livekit.url and that the server is running."
        ) from None
    except aiohttp.ClientError as exc:
        raise ConnectError(f"the LiveKit server at {where} failed the request ({exc}).") from None
    except api.TwirpError as exc:
        if exc.status in (401, 403):
            raise ConnectError(
                f"the LiveKit server at {where} refused the API key and secret "
                f"(HTTP {exc.status}); "
                "check livekit.api_key and livekit.api_secret (or LIVEKIT_API_KEY and "
                "LIVEKIT_API_SECRET)."
            ) from None
        raise ConnectError(
            f"the LiveKit server at {where} could not create the room "
            f"(HTTP {exc.status} {exc.code}: {exc.message})."
        ) from None


async def _delete_rooms(config: Config, names: list[str]) -> None:
    """Remove the rooms again; best effort, a server that already closed them is fine."""
    try:
        async with asyncio.timeout(config.connect_timeout_s), _api(config) as lk:
            for name in names:
                with contextlib.suppress(api.TwirpError):
                    await lk.room.delete_room(api.DeleteRoomRequest(room=name))
    except (TimeoutError, aiohttp.ClientError) as exc:
        logger.debug("could not delete the rooms: {}", exc)


def _token(config: Config, room: str, identity: str, name: str) -> str:
    grants = api.VideoGrants(room_join=True, room=room, can_publish=True, can_subscribe=True)
    ttl = timedelta(seconds=run_bound_s(config) + 600)
    return _sign(
        api.AccessToken(config.api_key, config.api_secret)
        .with_identity(identity)
        .with_name(name)
        .with_grants(grants)
        .with_ttl(ttl)
    )


# -- one conversation ------------------------------------------------------------------------------


class Conversation:
    """Two agents in one room, and the run folder that holds what they heard."""

    def __init__(
        self, config: Config, run_id: str, *, embedded: bool, server_pid: int | None = None
    ) -> None:
        self.config = config
        self.server_pid = server_pid
        self.run_id = run_id
        self.room = _room_name(run_id)
        self.run_dir = config.out_dir / run_id
        self.embedded = embedded
        self.identities = {r: f"{IDENTITY_PREFIXES[r]}{uuid.uuid4()}" for r in ROLES}
        self.tones = {"customer": config.customer_hz, "support": config.support_hz}
        self.agents: dict[str, Agent] = {}
        self.view = PairView(run_id, Counters(), Counters())
        self.outcome = Outcome(
            run_id, self.run_dir, "running", None, self.view.customer, self.view.support
        )
        self._stats: dict[str, dict[str, Any]] = {
            r: {"final": {"publisher_stats": [], "subscriber_stats": []}, "samples": []}
            for r in ROLES
        }
        self._closers: list[Any] = []
        self._stats_from_ns = 0  # see STATS_GRACE_S
        self._realtime: realtime.Realtime | None = None  # how the talk was scheduled

    async def run(self, stop: StopSignal, view: Begins, gate: Gate | None = None) -> None:
        """Talk for the configured duration (or until stopped), then close the evidence.

        With a `gate`, talking starts at the instant it gives (see `StartGate`).
        """
        status: str = "failed"
        reason: str | None = "the run ended before the agents joined."
        gate = gate or StartGate(1)
        self._gated = False
        try:
            self._open()
            async with asyncio.timeout(run_bound_s(self.config)):
                status, reason = await self._talk(stop, view, gate)
        except ConnectError as exc:
            status, reason = "failed", str(exc)
        except TimeoutError:
            status = "failed"
            reason = f"the run exceeded its time bound of {run_bound_s(self.config):g} s."
        except asyncio.CancelledError:
            status, reason = "interrupted", stop.reason or "the run was cancelled."
            raise
        except Exception as exc:
            status, reason = "failed", f"unexpected error: {exc!r}."
            raise
        finally:
            if not self._gated:
                gate.leave()
            await self._close(status, reason)

    # -- phases --------------------------------------------------------------------------------

    def _open(self) -> None:
        """Create the run folder, every evidence file and the manifest (status running)."""
        self.run_dir.mkdir(parents=True, exist_ok=False)
        d = self.run_dir
        self.events = evidence.EventLog(d / evidence.EVENTS)
        self.wavs = {r: evidence.WavWriter(d / evidence.wav_name(r)) for r in ROLES}
        self.arrivals = {r: evidence.TimingWriter(d / evidence.arrivals_name(r)) for r in ROLES}
        self.sent = {r: evidence.TimingWriter(d / evidence.sent_name(r)) for r in ROLES}
        self.bursts = {r: evidence.BurstsWriter(d / evidence.bursts_name(r)) for r in ROLES}
        self.host = evidence.HostWriter(d / evidence.HOST)
        self._closers = [
            self.events,
            self.host,
            *self.wavs.values(),
            *self.arrivals.values(),
            *self.sent.values(),
            *self.bursts.values(),
        ]
        now_ns, now = time.monotonic_ns(), datetime.now(UTC)
        c = self.config
        self.manifest = evidence.Manifest(
            d / evidence.MANIFEST,
            {
                "schema": "echoproof.manifest/1",
                "run_id": self.run_id,
                "room": self.room,
                "server_url": c.ws_url,
                "embedded_server": self.embedded,
                "mode": c.mode,
                "sample_rate": SAMPLE_RATE,
                "channels": 1,
                "frame_samples": FRAME_SAMPLES,
                "participants": {
                    r: {"identity": self.identities[r], "tone_hz": self.tones[r]} for r in ROLES
                },
                "directions": evidence.directions(),
                "host": {"file": evidence.HOST, "server_sampled": self.server_pid is not None},
                "burst": {"duration_s": c.burst_s, "ramp_s": c.ramp_s, "amplitude": c.amplitude},
                "clock": {"monotonic_ns": now_ns, "wall": evidence.utc_iso(now)},
                "started_at": evidence.utc_iso(now),
                "duration_s": c.duration_s,
                "versions": evidence.versions(),
                "config": c.public(),
            },
        )
        for role in ROLES:
            peer = evidence.other(role)
            agent = Agent(
                role,
                self.identities[role],
                tone_hz=self.tones[role],
                peer_identity=self.identities[peer],
                peer_hz=self.tones[peer],
                queue_size_ms=c.queue_size_ms,
                events=self.events,
            )
            self.agents[role] = agent
        # The live view and the outcome read the agents' own counters.
        self.view.customer = self.outcome.customer = self.agents["customer"].counters
        self.view.support = self.outcome.support = self.agents["support"].counters
        logger.info("run {}: room {}, evidence in {}", self.run_id, self.room, self.run_dir)

    async def _talk(self, stop: StopSignal, view: Begins, gate: Gate) -> tuple[str, str | None]:
        c, agents = self.config, self.agents
        names = {"customer": "Customer", "support": "Customer Support"}
        tokens = {r: _token(c, self.room, self.identities[r], names[r]) for r in ROLES}
        await _all(agents[r].join(c.ws_url, tokens[r], c.connect_timeout_s) for r in ROLES)
        await _all(agents[r].wait_for_peer(c.connect_timeout_s) for r in ROLES)
        for r in ROLES:
            agents[r].start_recording(self.wavs[r], self.arrivals[r])

        voices = {r: self._voice(r) for r in ROLES}
        n_frames = total_frames(c.duration_s)
        self._gated = True
        start_ns = await _unless_stopped(gate.ready(), stop)
        if start_ns is None:
            return "interrupted", stop.reason
        if gate.settles:
            self._stats_from_ns = start_ns + int(STATS_GRACE_S * 1e9)
        view.begin(start_ns, c.duration_s)
        self.events.write("run", "conversation_started", start_ns=start_ns, frames=n_frames)
        logger.info(
            "run {}: both agents hear each other; talking for {:g} s", self.run_id, c.duration_s
        )

        def halted() -> bool:
            return stop.is_set() or self._lost() is not None

        stall = c.send_stall
        stalls = {r: agents[r].stalls for r in ROLES}
        sampler = asyncio.create_task(self._sample_stats(), name=f"stats-{self.run_id}")
        self._realtime = realtime.enter()  # SCHED_FIFO and a frozen heap: see pipeline.realtime
        try:
            async with HostMonitor(self.host, stalls, server_pid=self.server_pid):
                async with asyncio.TaskGroup() as tg:
                    for r in ROLES:
                        tg.create_task(
                            agents[r].speak(
                                voices[r],
                                start_ns=start_ns,
                                n_frames=n_frames,
                                sent=self.sent[r],
                                bursts=self.bursts[r],
                                stop=halted,
                                stall=None
                                if stall is None or stall.role != r
                                else (round(stall.at_s * 100), stall.duration_s),
                            ),
                            name=f"{r}-speak-{self.run_id}",
                        )
                if not halted():
                    await self._tail(halted)
        finally:
            realtime.leave()
            await cancel_and_wait(sampler)
        if stop.is_set():
            return "interrupted", stop.reason
        lost = self._lost()
        if lost is not None:
            return "failed", lost
        return "complete", None

    def _voice(self, role: str) -> Voice:
        c = self.config
        waveform = dsp.burst(
            self.tones[role], c.burst_s, SAMPLE_RATE, amplitude=c.amplitude, ramp_s=c.ramp_s
        )
        bursts = schedule(
            role,
            mode=c.mode,
            tone_hz=self.tones[role],
            duration_s=c.duration_s,
            burst_samples=len(waveform),
            period_s=c.period_s,
        )
        return Voice(bursts, waveform)

    async def _tail(self, halted: Any) -> None:
        """Let the last frames arrive: at least TAIL_MIN_S, until both received what was sent."""
        cu, su = self.agents["customer"].counters, self.agents["support"].counters
        t0 = time.monotonic()
        while not halted():
            waited = time.monotonic() - t0
            caught_up = (
                su.frames_received >= cu.frames_sent and cu.frames_received >= su.frames_sent
            )
            if waited >= tail_max_s(self.config) or (waited >= TAIL_MIN_S and caught_up):
                return
            await asyncio.sleep(0.02)

    def _lost(self) -> str | None:
        for agent in self.agents.values():
            reason = agent.lost(self.config.connect_timeout_s)
            if reason is not None:
                return reason
        return None

    async def _sample_stats(self) -> None:
        while True:
            # the first sample once the grace after a settled start is over (STATS_GRACE_S)
            wait_ns = max(STATS_EVERY_S * 1e9, self._stats_from_ns - time.monotonic_ns())
            await asyncio.sleep(wait_ns / 1e9)
            for role, agent in self.agents.items():
                t_ns = time.monotonic_ns()
                stats = await agent.rtc_stats()
                if stats is not None:
                    self._stats[role]["samples"].append({"t_ns": t_ns, **stats})

    async def _close(self, status: str, reason: str | None) -> None:
        """Stop recording, take the final statistics, leave, close every file, finish the manifest.

        Runs even when the conversation is cancelled; each step is safe if an earlier one failed.
        """
        try:
            for agent in self.agents.values():
                await agent.stop_receiving()
            for role, agent in self.agents.items():
                if time.monotonic_ns() < self._stats_from_ns:
                    logger.info("run {}: no final RTC statistics this early", self.run_id)
                    break
                stats = await agent.rtc_stats()
                if stats is not None:
                    self._stats[role]["final"] = stats
            if self._closers:
                evidence.write_json_atomic(self.run_dir / evidence.RTC_STATS, self._stats)
            for agent in self.agents.values():
                await agent.aclose()
        finally:
            for closer in self._closers:
                closer.close()
            self.outcome.status, self.outcome.reason = status, reason
            if hasattr(self, "manifest"):
                rt = None if self._realtime is None else self._realtime.as_dict()
                self.manifest.finish(status, reason, realtime=rt)
            log = logger.info if status == "complete" else logger.warning
            log("run {}: {}{}", self.run_id, status, "" if reason is None else f" ({reason})")


async def _unless_stopped(waiting: Awaitable[T], stop: StopSignal) -> T | None:
    """What `waiting` gives, or None once `stop` is set first."""
    wait = asyncio.ensure_future(waiting)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((wait, stopped), return_when=asyncio.FIRST_COMPLETED)
    finally:
        await cancel_and_wait(wait, stopped)
    return wait.result() if wait.done() and not wait.cancelled() else None


async def _all(coros: Any) -> None:
    """Await every coroutine at once; raise the first PipelineError after all have finished."""
    results = await asyncio.gather(*coros, return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException) and not isinstance(r, PipelineError):
            raise r
    for r in results:
        if isinstance(r, PipelineError):
            raise r
