"""impairment benchmark: the figures of a signed report against a known injected impairment.

``python -m benchmarks.impairment [--quick]``. Every case is one real conversation (two SDK
agents, a ``pipeline.tones.conversation.Conversation`` as ``pipeline.capture`` runs it, in a room
this
module makes for three participants: ``capture``'s rooms admit two) against
``python -m echoproof.sfu``
started in a child process with the impairment on its command line (a child, as the pipeline
runs it: the in-process server adds hundreds of ms of event-loop delay, see
``pipeline.server.process``); ``verify.write_report`` then signs the report and the figures are read
from its ``report.json``. Delay and jitter cases: quick 1 repeat of 10 s, full 3 repeats of
20 s; loss: see below; outage: one run of 10 s / 30 s.

- delay: ``--delay-ms D --impair-to support-agent`` delays only customer -> support, for D in 0,
  100 and 300 ms, run interleaved ``repeats`` times. A third participant, the *reference*
  (``reference-<uuid>``, :class:`_Reference`), joins the same room in this process, records the
  Customer's track with the agents' writers and clock, and is not delayed (the impairment applies
  to ``support-agent`` subscribers only). :func:`with_reference` copies the run folder with the
  reference's WAV and arrivals in place of the Support agent's, and ``verify.analyse`` computes
  the reference's per-burst latencies with verify's own code. ``shift_ms`` is the median over
  repeats of the median over bursts of (Support's latency - the reference's) for the same burst;
  ``error_ms`` = shift - D; ``within_1ms`` judges it. ``of_medians_*``: the Support agent's median
  minus the reference's median instead (the difference of two medians, not the median of the
  differences); ``bursts_within_1ms_share``: bursts whose own difference is within 1 ms of D.

  Why the reference, and not two separate runs: both receivers hear the same sender (same frames
  against the same 20 ms packets), their frames come from the same playout pull (the SDK's one
  audio-device timer per process pulls every remote track's NetEq: at D = 0 the two agree per
  burst within ~0.2 ms), and they share the machine's load during the run, so whatever moves the
  latency within a run or between runs moves both. Measured here, run-to-run variation is not
  only the 10 ms clock phases: the NetEq buffer and the latency of both receivers step by several
  ms within a run and by tens of ms between runs on a loaded machine. Pairing per burst also
  keeps a burst where one receiver's NetEq sits a packet (10-20 ms) apart from moving the figure.
  What remains is the server's delay plus any lasting difference between the two jitter buffers,
  which the delayed stream's own timing (asyncio timers in the server) may cause: it is reported,
  not removed (``buffer_minus_reference_ms``: the mean jitter-buffer delay of the Support agent
  minus the reference's, RTC statistics). The old figures against a separate no-delay run are
  kept as ``separate_*`` (the run-to-run variation a user comparing two runs sees):
  ``separate_shift_ms`` = the median latency minus the one of the no-delay run of the same
  repeat; ``separate_controlled_ms`` subtracts the change of the unimpaired support -> customer
  direction too; ``separate_net_of_buffer_ms`` the change of the mean jitter-buffer delay.
- loss: ``--loss 5 --seed S`` on every stream, with the agents publishing RED (config ``red``
  true, the SDKs' default: each packet also carries the one before) and without (plain Opus),
  paired: repeat i runs both arms with seed i + 1 (the server drops the same packets) in
  alternating order; quick 2 repeats of 10 s, full 3 of 30 s. Per run, both directions pooled:
  the loss on the wire (the receiver's RTP statistics: ``packet_loss_pct`` of ``packets`` =
  received + lost) and the loss as the audio shows it: ``concealed_pct`` (samples NetEq
  concealed, of all it played), ``audible_concealed_pct`` (without the silent ones, DTX comfort
  noise), ``concealment_events``, and verify's ``bursts_with_glitches``, ``glitches``,
  ``bursts_lost``, ``gap_total_ms``, ``frames_received_share``; the arm's figure is the median
  over its repeats. Per direction, ``within_interval``: 5 % lies in the exact (Clopper-Pearson,
  ``scipy.stats.binomtest``) 95% interval of the measured loss; and whether verify's default
  thresholds fail the run naming packet loss. RED changes what is heard, not what is lost: the
  wire figure is the same in both arms.
- jitter: ``--jitter-ms 0/20/40`` on every stream (the 0 case is the delay benchmark's, with its
  reference in the room): the median latency, latency p95 - min and IQR (p75 - p25 of the
  per-burst latencies), verify's latency jitter, the RTP jitter (the receiver's last RFC 3550
  estimate) and the mean jitter-buffer delay (RTC statistics). Medians over both directions and
  the repeats; ``grows`` says which grow with --jitter-ms. NetEq turns bounded jitter into delay,
  so the buffer and the median grow while the spread of the latency need not.
- outage: ``--outage S:2 --impair-to support-agent`` with nearly continuous bursts (0.9 s in every
  1.0 s, duplex): per direction, the burst audio the report misses (``report_missing_ms``: its
  gaps, audio missing inside heard bursts, see ``verify._gaps``, plus the bursts lost) against
  the burst audio sent inside the outage (``outage_audio_ms``: the pauses between bursts held
  none), and the first gap's start against S: the server counts S from the stream's first
  packet, taken here as the sender's first sent frame (``start_error_ms`` = gap start - first
  sent frame - S). Beside it, as a cross-check, the
  longest quiet stretch of the received WAV between the first and last burst heard, from where
  the level starts to fall to where it is back to half (see :func:`_gap`), and when it began after
  the direction's first received frame. A stretch may be longer than the outage by the part of a
  0.1 s pause between bursts that touches its ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from livekit import api, rtc
from scipy.stats import binomtest

import verify
from benchmarks._server import quiet_logs, sfu_process
from echoproof.aiotasks import cancel_and_wait
from pipeline import rooms
from pipeline.config import Config, from_dict
from pipeline.gate import StopSignal
from pipeline.recording import evidence as pev
from pipeline.tones.conversation import Conversation
from verify import evidence as ev

TO_SUPPORT = "support-agent"
CUSTOMER = "customer-"
LOSS_PCT = 5.0
OUTAGE_S = 2.0
QUIET_BLOCK = 240  # 5 ms at 48 kHz


class _Reference:
    """A third participant that records the Customer's track, in this process, undelayed.

    It joins the room with ``auto_subscribe`` off and asks for the Customer's audio only (the
    embedded server forwards every track regardless; only the Customer's is recorded). Every frame
    ``rtc.AudioStream`` yields goes to a WAV and an arrivals CSV with the writers and the clock
    the speakers use (``pipeline.speaker.Speaker._receive``). ``aclose()`` (safe twice) ends it.
    """

    def __init__(self, out_dir: Path) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self.dir = out_dir
        self.wav = pev.WavWriter(out_dir / "reference.wav")
        self.arrivals = pev.TimingWriter(out_dir / "reference.arrivals.csv")
        self.buffer_ms = math.nan  # the mean jitter-buffer delay, from the final RTC statistics
        self._room: rtc.Room | None = None
        self._receiver: asyncio.Task[None] | None = None

    async def join(self, url: str, token: str) -> None:
        """Connect; subscribe to the Customer's audio track once it is (or if it was) published."""
        room = self._room = rtc.Room(loop=asyncio.get_running_loop())

        def want(pub: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant) -> None:
            if p.identity.startswith(CUSTOMER) and pub.kind == rtc.TrackKind.KIND_AUDIO:
                pub.set_subscribed(True)

        @room.on("track_subscribed")
        def _subscribed(
            track: rtc.Track, pub: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant
        ) -> None:
            # The embedded server ignores auto_subscribe (it forwards every track to everyone):
            # the Support's track arrives too, and is not recorded.
            if (
                self._receiver is None
                and p.identity.startswith(CUSTOMER)
                and isinstance(track, rtc.RemoteAudioTrack)
            ):
                stream = rtc.AudioStream(track, sample_rate=ev.SAMPLE_RATE, num_channels=1)
                self._receiver = asyncio.create_task(self._receive(stream), name="reference")

        room.on("track_published", want)
        async with asyncio.timeout(30):
            await room.connect(url, token, rtc.RoomOptions(auto_subscribe=False))
        for p in room.remote_participants.values():
            for pub in p.track_publications.values():
                want(pub, p)

    async def _receive(self, stream: rtc.AudioStream) -> None:
        frames = samples = 0
        try:
            async for event in stream:
                t_ns = time.monotonic_ns()
                pcm = np.frombuffer(event.frame.data, dtype=np.int16)
                self.wav.write(pcm)
                self.arrivals.write(frames, samples, len(pcm), t_ns)
                frames += 1
                samples += len(pcm)
        finally:
            await stream.aclose()

    async def aclose(self) -> None:
        """Stop recording, take the final statistics, leave, close the files; safe twice."""
        task, self._receiver = self._receiver, None
        await cancel_and_wait(task)
        room, self._room = self._room, None
        if room is not None:
            with contextlib.suppress(RuntimeError, TimeoutError):
                stats = await asyncio.wait_for(room.get_rtc_stats(), 5)
                for s in stats.subscriber_stats:
                    if s.HasField("inbound_rtp") and s.inbound_rtp.stream.kind == "audio":
                        inbound = s.inbound_rtp.inbound
                        if inbound.jitter_buffer_emitted_count:
                            self.buffer_ms = (
                                1000
                                * inbound.jitter_buffer_delay
                                / inbound.jitter_buffer_emitted_count
                            )
            with contextlib.suppress(Exception):  # leaving is best effort
                await asyncio.wait_for(room.disconnect(), 5)
        self.wav.close()
        self.arrivals.close()


async def _conversation(
    config: Config, work: Path, reference: bool
) -> tuple[Path, _Reference | None]:
    """One conversation (a ``Conversation``, as ``capture`` runs it), maybe overheard.

    Its own room rather than ``capture``'s: ``capture`` creates rooms for two participants.
    Returns the run folder and, with ``reference``, the reference (closed).
    """
    conversation = Conversation(config, pev.new_run_id(), embedded=False)
    room = conversation.room
    async with rooms.client(config) as lk:  # max 3: the reference is the third
        await lk.room.create_room(
            api.CreateRoomRequest(name=room, empty_timeout=60, max_participants=3)
        )
    ref = _Reference(work / f"reference-{conversation.run_id}") if reference else None
    try:
        async with contextlib.AsyncExitStack() as stack:
            if ref is not None:
                stack.push_async_callback(ref.aclose)
                identity = f"reference-{uuid.uuid4()}"
                await ref.join(config.ws_url, rooms.token(config, room, identity, "Reference"))
            await conversation.run(StopSignal(), _NoView())
    finally:
        await rooms.delete_rooms(config, [room])
    outcome = conversation.outcome
    if outcome.status != "complete":
        raise RuntimeError(f"the conversation ended {outcome.status}: {outcome.reason}")
    return outcome.run_dir, ref


class _NoView:
    """A conversation's start goes nowhere: the benchmark prints its own table."""

    def begin(self, start_ns: int, duration_s: float) -> None:
        pass


async def _case(
    impair: list[str], duration_s: float, work: Path, *, reference: bool = False, **extra: Any
) -> tuple[dict[str, Any], Path, list[str], _Reference | None]:
    """One conversation against a server impaired by ``impair``.

    Returns its report, its run folder, the report's failures and (with ``reference``) the
    reference participant that overheard the Customer.
    """
    async with sfu_process(*impair) as (url, _):
        config = from_dict(
            {
                "livekit": {"url": url, "api_key": "devkey", "api_secret": "secret"},
                "duration_s": duration_s,
                "out_dir": str(work / f"case-{time.monotonic_ns()}"),
                **extra,
            }
        )
        run_dir, ref = await _conversation(config, work, reference)
    result = verify.write_report(run_dir, key_path=work / "signing-key.pem", html=False)
    return result.report, run_dir, result.failures, ref


def with_reference(run_dir: Path, wav: Path, arrivals: Path, dest: Path) -> Path:
    """A copy of ``run_dir``'s evidence in ``dest`` where the Support agent heard ``wav``.

    The customer -> support direction's received WAV and arrivals CSV are replaced by ``wav``
    and ``arrivals`` (the reference's recording); everything else is copied unchanged, so
    ``verify.analyse(dest)`` computes the reference's figures with verify's own code.
    """
    manifest = ev.read_manifest(run_dir)
    dest.mkdir(parents=True, exist_ok=False)
    for name in ev.evidence_names(manifest):
        shutil.copy2(run_dir / name, dest / name)
    (to_support,) = [d for d in ev.direction_files(manifest) if d.sender == "customer"]
    shutil.copyfile(wav, dest / to_support.wav)
    shutil.copyfile(arrivals, dest / to_support.arrivals)
    return dest


def _reference_figures(run_dir: Path, ref: _Reference) -> dict[str, Any]:
    """verify's figures of the customer -> support direction as the reference heard it."""
    copy = with_reference(run_dir, ref.wav.path, ref.arrivals.path, ref.dir / "swapped")
    return _figures(verify.analyse(copy))["to_support"]


def _figures(report: dict[str, Any]) -> dict[str, Any]:
    """The figures of a report, keyed "to_support" / "to_customer" by receiver."""
    out = {}
    for d in report["directions"]:
        out["to_support" if d["to"].startswith("support") else "to_customer"] = d
    return out


def _inbound_audio(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Per receiver ("to_support" / "to_customer"), the ``inbound`` part of its inbound audio
    RTP statistics at the end of the run (rtc-stats.json, final sample)."""
    stats = json.loads((run_dir / "rtc-stats.json").read_text())
    out = {}
    for role, key in (("support", "to_support"), ("customer", "to_customer")):
        for stat in stats.get(role, {}).get("final", {}).get("subscriber_stats", []):
            body = stat.get("inbound_rtp", {})
            if body.get("stream", {}).get("kind") == "audio":
                out[key] = body["inbound"]
    return out


def _buffer_ms(run_dir: Path) -> dict[str, float]:
    """Per receiver, the mean jitter-buffer delay of the run."""
    out = {}
    for key, inbound in _inbound_audio(run_dir).items():
        emitted = float(inbound.get("jitter_buffer_emitted_count", 0))
        if emitted:
            out[key] = 1000 * float(inbound["jitter_buffer_delay"]) / emitted
    return out


def _spread(values: list[float]) -> float:
    return max(values) - min(values) if values else math.nan


def _iqr(direction: dict[str, Any]) -> float:
    """p75 - p25 of the direction's per-burst latencies (detected bursts)."""
    lat = [b["latency_ms"] for b in direction["bursts"] if b["state"] == "detected"]
    if len(lat) < 2:
        return math.nan
    p25, p75 = np.percentile(lat, [25, 75])
    return float(p75 - p25)


def _per_burst_shift(impaired: dict[str, Any], reference: dict[str, Any]) -> list[float]:
    """Per burst heard by both: the Support agent's latency minus the reference's."""
    return [
        a["latency_ms"] - b["latency_ms"]
        for a, b in zip(impaired["bursts"], reference["bursts"], strict=True)
        if a["state"] == b["state"] == "detected"
    ]


async def _delay_and_jitter(quick: bool, work: Path) -> dict[str, Any]:
    duration_s = 10.0 if quick else 20.0
    repeats = 1 if quick else 3
    cases = {
        "0": [],
        "100": ["--delay-ms", "100", "--impair-to", TO_SUPPORT],
        "300": ["--delay-ms", "300", "--impair-to", TO_SUPPORT],
        "jitter_20": ["--jitter-ms", "20", "--seed", "1"],
        "jitter_40": ["--jitter-ms", "40", "--seed", "1"],
    }
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in cases}
    for _ in range(repeats):
        for name, impair in cases.items():  # interleaved: drift hits every case alike
            overheard = not name.startswith("jitter")
            report, run_dir, _, ref = await _case(impair, duration_s, work, reference=overheard)
            figures = _figures(report)
            for key, ms in _buffer_ms(run_dir).items():
                figures[key]["buffer_ms"] = ms
            if ref is not None:
                figures["reference"] = _reference_figures(run_dir, ref)
                figures["reference"]["buffer_ms"] = ref.buffer_ms
            runs[name].append(figures)

    def median(case: dict[str, Any], key: str) -> float:
        value = case[key]["latency_ms"]["median"]
        return math.nan if value is None else float(value)

    delay: dict[str, Any] = {"duration_s": duration_s, "repeats": repeats}
    for d_ms in (0, 100, 300):
        paired, of_medians, per_burst, buffers = [], [], [], []
        for case in runs[str(d_ms)]:
            diffs = _per_burst_shift(case["to_support"], case["reference"])
            paired.append(statistics.median(diffs) if diffs else math.nan)
            of_medians.append(median(case, "to_support") - median(case, "reference"))
            per_burst += diffs
            buffers.append(
                case["to_support"].get("buffer_ms", math.nan) - case["reference"]["buffer_ms"]
            )
        shift, shift_of_medians = statistics.median(paired), statistics.median(of_medians)
        figures = {
            "shift_ms": round(shift, 3),
            "error_ms": round(shift - d_ms, 3),
            "spread_ms": round(_spread(paired), 3),
            "per_repeat_shift_ms": [round(x, 3) for x in paired],
            "within_1ms": abs(shift - d_ms) <= 1.0,
            "of_medians_shift_ms": round(shift_of_medians, 3),
            "of_medians_error_ms": round(shift_of_medians - d_ms, 3),
            "of_medians_spread_ms": round(_spread(of_medians), 3),
            "per_repeat_of_medians_ms": [round(x, 3) for x in of_medians],
            "of_medians_within_1ms": abs(shift_of_medians - d_ms) <= 1.0,
            "bursts_within_1ms_share": round(
                sum(abs(x - d_ms) <= 1.0 for x in per_burst) / len(per_burst), 3
            )
            if per_burst
            else math.nan,
            "per_burst_shift_ms": [round(x, 2) for x in per_burst],
            "reference_median_ms": [round(median(c, "reference"), 3) for c in runs[str(d_ms)]],
            "buffer_minus_reference_ms": [round(x, 3) for x in buffers],
        }
        if d_ms:
            figures.update(_separate(runs["0"], runs[str(d_ms)], d_ms))
        delay[f"delay_{d_ms}"] = figures
    delay["baseline_median_ms"] = [median(r, "to_support") for r in runs["0"]]
    return {"delay": delay, "jitter": _jitter(runs)}


def _separate(
    base_runs: list[dict[str, Any]], case_runs: list[dict[str, Any]], d_ms: int
) -> dict[str, Any]:
    """The shift against the no-delay run of the same repeat: run-to-run variation included."""
    shift, controlled, net = [], [], []
    for base, case in zip(base_runs, case_runs, strict=True):
        s = case["to_support"]["latency_ms"]["median"] - base["to_support"]["latency_ms"]["median"]
        c = (
            case["to_customer"]["latency_ms"]["median"]
            - base["to_customer"]["latency_ms"]["median"]
        )
        shift.append(s)
        controlled.append(s - c)
        buffers = case["to_support"].get("buffer_ms", math.nan) - base["to_support"].get(
            "buffer_ms", math.nan
        )
        net.append(s - buffers)
    return {
        "separate_shift_ms": round(statistics.median(shift), 3),
        "separate_error_ms": round(statistics.median(shift) - d_ms, 3),
        "separate_spread_ms": round(_spread(shift), 3),
        "separate_controlled_ms": round(statistics.median(controlled), 3),
        "separate_error_controlled_ms": round(statistics.median(controlled) - d_ms, 3),
        "separate_controlled_spread_ms": round(_spread(controlled), 3),
        "separate_net_of_buffer_ms": round(statistics.median(net), 3),
        "separate_error_net_of_buffer_ms": round(statistics.median(net) - d_ms, 3),
        "separate_per_repeat_shift_ms": [round(x, 3) for x in shift],
    }


JITTER_FIGURES = (
    "median_ms",
    "p95_minus_min_ms",
    "iqr_ms",
    "latency_jitter_ms",
    "rtp_jitter_ms",
    "buffer_ms",
)


def _jitter(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per jitter case, medians over both directions and the repeats; which figures grow."""
    jitter: dict[str, Any] = {}
    names = ("jitter_0", "jitter_20", "jitter_40")
    for name, key in zip(("0", "jitter_20", "jitter_40"), names, strict=True):
        per: dict[str, list[float]] = {k: [] for k in JITTER_FIGURES}
        for figs in runs[name]:
            for which in ("to_support", "to_customer"):  # not the reference: it is no receiver
                d = figs[which]
                lat = d["latency_ms"]
                per["median_ms"].append(lat["median"])
                per["p95_minus_min_ms"].append(lat["p95"] - lat["min"])
                per["iqr_ms"].append(_iqr(d))
                per["latency_jitter_ms"].append(lat["jitter"])
                per["rtp_jitter_ms"].append(d["rtc"]["jitter_ms"] or math.nan)
                per["buffer_ms"].append(d.get("buffer_ms", math.nan))
        jitter[key] = {k: round(statistics.median(v), 3) for k, v in per.items()}
    jitter["grows"] = {
        k: jitter[names[0]][k] < jitter[names[1]][k] < jitter[names[2]][k] for k in JITTER_FIGURES
    }
    return jitter


# The loss case's figures, pooled over both directions of a run: on the wire (RTP statistics)
# and in the audio (NetEq's concealment, verify's bursts, glitches and gaps).
WIRE = ("packets", "packets_lost", "packet_loss_pct")
COUNTS = ("concealment_events", "bursts_lost", "bursts_with_glitches", "glitches", "gap_total_ms")
AUDIO = ("concealed_pct", "audible_concealed_pct", *COUNTS, "frames_received_share")


def _exact_interval(lost: int, packets: int) -> tuple[float, float]:
    """The exact (Clopper-Pearson) 95% interval of a loss rate, in percent."""
    ci = binomtest(lost, packets, LOSS_PCT / 100).proportion_ci(0.95, method="exact")
    return 100 * ci.low, 100 * ci.high


def _loss_run(report: dict[str, Any], run_dir: Path, failures: list[str]) -> dict[str, Any]:
    """One loss run's figures: per direction, and pooled over both (see WIRE and AUDIO)."""
    # Concealed samples that were silence: DTX comfort noise, not loss.
    silent = {
        k: int(v.get("silent_concealed_samples", 0)) for k, v in _inbound_audio(run_dir).items()
    }
    per: dict[str, Any] = {}
    for key, d in _figures(report).items():
        rtc = d["rtc"]
        received, lost = rtc["packets_received"] or 0, rtc["packets_lost"] or 0
        concealed = rtc["concealed_samples"] or 0
        lo, hi = _exact_interval(lost, received + lost) if received + lost else (math.nan,) * 2
        per[key] = {
            "packets": received + lost,
            "packets_lost": lost,
            "packet_loss_pct": rtc["packet_loss_pct"],
            "interval_95_pct": [round(lo, 3), round(hi, 3)],
            "within_interval": lo <= LOSS_PCT <= hi,
            "concealed_samples": concealed,
            "audible_concealed_samples": concealed - silent.get(key, 0),
            "total_samples_received": rtc["total_samples_received"] or 0,
            "concealment_events": rtc["concealment_events"],
            "bursts_sent": d["bursts_sent"],
            "bursts_lost": d["bursts_lost"],
            "bursts_with_glitches": d["bursts_with_glitches"],
            "glitches": d["glitches"],
            "gap_total_ms": d["gap_total_ms"],
            "frames_received_share": d["frames_received_share"],
        }
    both = list(per.values())

    def pooled(name: str) -> float:
        return float(sum(x[name] or 0 for x in both))

    def share(part: str, whole: str) -> float:
        return 100 * pooled(part) / pooled(whole) if pooled(whole) else math.nan

    figures = {
        "packets": int(pooled("packets")),
        "packets_lost": int(pooled("packets_lost")),
        "packet_loss_pct": share("packets_lost", "packets"),
        "concealed_pct": share("concealed_samples", "total_samples_received"),
        "audible_concealed_pct": share("audible_concealed_samples", "total_samples_received"),
        **{k: pooled(k) for k in COUNTS},
        "frames_received_share": min(float(x["frames_received_share"]) for x in both),
    }
    return {
        **per,
        "pooled": figures,
        "failed_naming_loss": any("packet loss" in f for f in failures),
        "failures": failures,
    }


async def _loss(quick: bool, work: Path) -> dict[str, Any]:
    """``--loss 5`` with RED on and off, paired: a repeat runs both arms with the same seed (the
    same packets dropped), in alternating order so that drift hits both alike."""
    duration_s = 10.0 if quick else 30.0
    repeats = 2 if quick else 3
    runs: dict[str, list[dict[str, Any]]] = {"red": [], "plain": []}
    for i in range(repeats):
        for arm in ("red", "plain") if i % 2 == 0 else ("plain", "red"):
            impair = ["--loss", f"{LOSS_PCT:g}", "--seed", str(i + 1)]
            report, run_dir, failures, _ = await _case(impair, duration_s, work, red=arm == "red")
            runs[arm].append(_loss_run(report, run_dir, failures))
    out: dict[str, Any] = {"duration_s": duration_s, "repeats": repeats, "loss_pct": LOSS_PCT}
    for arm, arm_runs in runs.items():
        medians = {
            k: round(statistics.median(r["pooled"][k] for r in arm_runs), 4) for k in WIRE + AUDIO
        }
        out[arm] = {
            **medians,
            "within_interval": sum(
                r[k]["within_interval"] for r in arm_runs for k in ("to_support", "to_customer")
            ),
            "directions": 2 * len(arm_runs),
            "failed_naming_loss": sum(r["failed_naming_loss"] for r in arm_runs),
            "runs": arm_runs,
        }
    return out


def _gap(samples: np.ndarray) -> tuple[int, int]:
    """The longest quiet stretch, as (first sample, length in samples).

    Quiet: 5 ms blocks below 10% of the median burst level. Its edges are then moved to where
    the level starts to fall (NetEq's concealment fades a lost tone out over ~150 ms) and to
    where it is back to half (the stream resumes abruptly).
    """
    blocks = samples.size // QUIET_BLOCK
    rows = samples[: blocks * QUIET_BLOCK].astype(np.float64).reshape(blocks, QUIET_BLOCK)
    rms = np.sqrt((rows**2).mean(axis=1))
    level = float(np.median(rms[rms > 0.1 * rms.max()]))
    quiet = [*(rms < 0.1 * level).tolist(), False]
    first, length, start = 0, 0, None
    for i, q in enumerate(quiet):
        if q and start is None:
            start = i
        elif not q and start is not None:
            if i - start > length:
                first, length = start, i - start
            start = None
    begin, end = first, first + length
    while begin > 0 and rms[begin - 1] < 0.9 * level:
        begin -= 1
    while end < blocks and rms[end] < 0.5 * level:
        end += 1
    return begin * QUIET_BLOCK, (end - begin) * QUIET_BLOCK


async def _outage(quick: bool, work: Path) -> dict[str, Any]:
    duration_s = 10.0 if quick else 30.0
    start_s = 4.0 if quick else 10.0
    report, run_dir, _, _ = await _case(
        ["--outage", f"{start_s:g}:{OUTAGE_S:g}", "--impair-to", TO_SUPPORT],
        duration_s,
        work,
        mode="duplex",
        burst={"duration_s": 0.9, "period_s": 1.0, "ramp_s": 0.005, "amplitude": 0.5},
    )
    out: dict[str, Any] = {"duration_s": duration_s, "outage": [start_s, OUTAGE_S]}
    origin = json.loads((run_dir / ev.MANIFEST).read_text())["clock"]["monotonic_ns"]
    for key, d in _figures(report).items():
        sent = ev.read_timing(run_dir / d["files"]["sent"])
        first_sent_s = (int(sent.t_ns[0]) - origin) / 1e9
        samples = ev.read_wav(run_dir / d["files"]["wav"])
        arrivals = ev.read_timing(run_dir / d["files"]["arrivals"])
        # Only between the first and the last burst heard: not the silence before or after.
        onsets = [b["onset_sample"] for b in d["bursts"] if b["state"] == "detected"]
        lo, hi = int(onsets[0]), int(onsets[-1])
        begin, length = _gap(samples[lo:hi])
        begin += lo
        # The wall time of the quiet stretch's first sample, from the frame that holds it.
        frame = int(np.searchsorted(arrivals.sample, begin, "right")) - 1
        t0 = arrivals.t_ns[0]
        at = (arrivals.t_ns[frame] - t0) / 1e9 + (begin - arrivals.sample[frame]) / ev.SAMPLE_RATE
        gap = length / ev.SAMPLE_RATE
        # What the outage took: the burst audio sent inside it (not the pauses between bursts),
        # against what the report misses, the gaps in heard bursts plus the lost bursts.
        schedule = ev.read_schedule(run_dir / d["files"]["bursts"])
        window = (first_sent_s + start_s, first_sent_s + start_s + OUTAGE_S)
        taken_s = sum(
            max(0.0, min(window[1], b["sent_s"] + n / ev.SAMPLE_RATE) - max(window[0], b["sent_s"]))
            for b, n in zip(d["bursts"], schedule.samples.tolist(), strict=True)
        )
        lost_s = sum(
            n / ev.SAMPLE_RATE
            for b, n in zip(d["bursts"], schedule.samples.tolist(), strict=True)
            if b["state"] == "lost"
        )
        missing_ms = d["gap_total_ms"] + lost_s * 1000
        first = min([g["start_s"] for g in d["gaps"]], default=None)
        out[key] = {
            "longest_gap_s": round(gap, 3),
            "gap_starts_s_after_first_frame": round(float(at), 3),
            "gap_error_ms": round((gap - OUTAGE_S) * 1000, 1),
            "report_gaps": len(d["gaps"]),
            "report_missing_ms": round(missing_ms, 1),
            "outage_audio_ms": round(taken_s * 1000, 1),
            "report_missing_error_ms": round(missing_ms - taken_s * 1000, 1),
            "report_first_gap_s": first,
            "start_error_ms": None
            if first is None
            else round((first - first_sent_s - start_s) * 1000, 1),
            "bursts_lost": d["bursts_lost"],
            "glitches": d["glitches"],
        }
    return out


async def _run(quick: bool, work: Path) -> dict[str, Any]:
    results = await _delay_and_jitter(quick, work)
    results["loss"] = await _loss(quick, work)
    results["outage"] = await _outage(quick, work)
    return results


def _print(r: dict[str, Any]) -> None:
    d = r["delay"]
    print(f"delay ({d['repeats']} repeat(s) of {d['duration_s']:g} s); reference: the same run's "
          f"undelayed listener; separate: against the no-delay run (baseline medians "
          f"{d['baseline_median_ms']} ms)")  # fmt: skip
    print(
        f"{'injected':>9} {'ref shift':>9} {'error':>7} {'spread':>7} {'bursts+-1':>9} "
        f"{'of medians':>10} {'sep shift':>9} {'sep err':>7} {'sep spr':>7}"
    )
    for ms in (0, 100, 300):
        x = d[f"delay_{ms}"]
        row = (
            f"{ms:>7}ms {x['shift_ms']:>9.2f} {x['error_ms']:>7.2f} {x['spread_ms']:>7.2f} "
            f"{x['bursts_within_1ms_share']:>9.2f} {x['of_medians_shift_ms']:>10.2f}"
        )
        if ms:
            row += (
                f" {x['separate_shift_ms']:>9.2f} {x['separate_error_ms']:>7.2f} "
                f"{x['separate_spread_ms']:>7.2f}"
            )
        print(row)
    j = r["jitter"]
    print(f"jitter  {'median':>8} {'p95-min':>8} {'IQR':>6} {'lat jitter':>10} {'rtp jitter':>10} "
          f"{'buffer':>7}")  # fmt: skip
    for k in ("jitter_0", "jitter_20", "jitter_40"):
        x = j[k]
        print(
            f"{k:>9} {x['median_ms']:>8.2f} {x['p95_minus_min_ms']:>8.2f} {x['iqr_ms']:>6.2f} "
            f"{x['latency_jitter_ms']:>10.2f} {x['rtp_jitter_ms']:>10.2f} {x['buffer_ms']:>7.2f}"
        )
    print("jitter: grows with --jitter-ms: " + ", ".join(k for k, v in j["grows"].items() if v))
    loss = r["loss"]
    print(f"loss {loss['loss_pct']:g} %, RED on and off ({loss['repeats']} paired repeat(s) of "
          f"{loss['duration_s']:g} s; medians, both directions pooled)")  # fmt: skip
    print(
        f"{'':6} {'wire loss':>9} {'in 95% CI':>9} {'concealed':>9} {'audible':>8} "
        f"{'events':>6} {'glitched':>8} {'lost':>4} {'gaps':>7}"
    )
    for arm in ("red", "plain"):
        x = loss[arm]
        print(
            f"{arm:6} {x['packet_loss_pct']:>8.2f}% {x['within_interval']:>4}/{x['directions']:<4} "
            f"{x['concealed_pct']:>8.2f}% {x['audible_concealed_pct']:>7.2f}% "
            f"{x['concealment_events']:>6g} {x['bursts_with_glitches']:>8g} "
            f"{x['bursts_lost']:>4g} {x['gap_total_ms']:>5.0f}ms"
        )
    fails = [loss[arm]["failed_naming_loss"] for arm in ("red", "plain")]
    print(f"loss: runs the default thresholds fail naming packet loss: RED {fails[0]}, plain "
          f"{fails[1]} of {loss['repeats']} each")  # fmt: skip
    o = r["outage"]
    for k in ("to_support", "to_customer"):
        x = o[k]
        print(
            f"outage {o['outage']} {k}: report: {x['report_gaps']} gap(s) and "
            f"{x['bursts_lost']} lost burst(s), {x['report_missing_ms']} ms of burst audio "
            f"missing against {x['outage_audio_ms']} ms sent inside the outage (error "
            f"{x['report_missing_error_ms']} ms), first gap at {x['report_first_gap_s']} s (start "
            f"error {x['start_error_ms']} ms); WAV cross-check: "
            f"longest quiet {x['longest_gap_s']} s (error {x['gap_error_ms']} ms), "
            f"starting {x['gap_starts_s_after_first_frame']} s after the first frame"
        )


def run(quick: bool = False) -> dict[str, Any]:
    """Measure and print a small table; returns the figures (see the module docstring)."""
    with (
        quiet_logs("pipeline", "echoproof", "verify"),
        tempfile.TemporaryDirectory(prefix="echoproof-impair-") as tmp,
    ):
        results = asyncio.run(_run(quick, Path(tmp)))
    _print(results)
    return results


if __name__ == "__main__":
    run(quick="--quick" in sys.argv[1:])
