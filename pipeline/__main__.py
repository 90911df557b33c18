"""`python -m pipeline`: run the conversations, write the evidence, verify each run folder.

Exit codes are part of the interface: 0 every run complete and verified, 1 verification failed,
2 usage or config error, 3 could not connect or lost the server, 4 inconclusive (a threshold
failed while the host was stalled; the verdict names the stall: rerun on a quieter machine),
70 an unexpected error (a bug: one line, and the traceback in a log file it names), 130
interrupted (Ctrl-C, SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import signal
import sys
from pathlib import Path
from typing import Any, NoReturn

from loguru import logger

from echoproof.contract import HTML, SAMPLE_RATE
from pipeline.bounded_run import Outcome
from pipeline.config import Config, load_config
from pipeline.config.agent import AgentSpec
from pipeline.config.probe import ProbeConfig
from pipeline.console.live import clear_progress, statistics_table
from pipeline.console.logs import redact, setup_logging
from pipeline.console.tables import conversation_table, proof_table
from pipeline.errors import ConfigError, ConnectError, PipelineError
from pipeline.gate import StopSignal
from pipeline.run import capture
from pipeline.tones.probe import load_file as load_probe_file

EXIT_OK = 0
EXIT_VERIFY_FAILED = 1
EXIT_USAGE = 2
EXIT_CONNECT = 3
EXIT_INCONCLUSIVE = 4
EXIT_BUG = 70  # sysexits' EX_SOFTWARE
EXIT_INTERRUPTED = 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pipeline",
        description="Two agents talk over LiveKit; record what each hears, then verify it.",
    )
    p.add_argument("--config", type=Path, default=Path("config.json"), help="config file (JSON)")
    p.add_argument("--duration", type=float, help="seconds of conversation (default: config, 120)")
    p.add_argument("--out", type=Path, help="folder for run folders (default: config, recordings)")
    p.add_argument(
        "--pairs", type=int, help="conversations at once (callers of --agent), each in its own room"
    )
    p.add_argument(
        "--ramp",
        type=float,
        metavar="S",
        help="spread the joins evenly over S seconds, each talking once ready (default 0: all "
        "join, then all start at once)",
    )
    p.add_argument("--duplex", action="store_true", help="both agents talk at the same time")
    p.add_argument("--no-verify", action="store_true", help="capture only; skip the report")
    p.add_argument(
        "--probe", type=Path, metavar="FILE", help="your own speech as the probe (WAV, FLAC, OGG)"
    )
    p.add_argument("--no-probe", action="store_true", help="no speech-like probe between bursts")
    p.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="run each conversation as a task on a Ray cluster: auto, ray://host:10001, or local",
    )
    agent = p.add_argument_group("an agent under test (the Support side is your LiveKit agent)")
    agent.add_argument("--agent", metavar="NAME", help="dispatch the agent registered as NAME")
    agent.add_argument(
        "--agent-cmd", metavar="CMD", help='start its worker, e.g. "python agent.py dev"'
    )
    agent.add_argument(
        "--say",
        metavar="FILE",
        nargs="+",
        type=Path,
        help="audio files (WAV, FLAC, OGG) the Customer says in turn (default: its tone burst)",
    )
    agent.add_argument(
        "--script",
        metavar="FILE",
        type=Path,
        help="a caller's script (JSON or YAML): each turn's words, and barge-in, noise, phone line",
    )
    return p


def _setup_logging() -> None:
    def sink(message: Any) -> None:
        clear_progress()  # a log line must not run into the live progress bar
        sys.stderr.write(message)

    setup_logging(sink, "{time:HH:mm:ss.SSS} {level: <7} {message}")


def _configure(args: argparse.Namespace) -> Config:
    config = load_config(args.config, os.environ)
    changes: dict[str, Any] = {}
    if args.duration is not None:
        if not 0 < args.duration <= 86_400:
            raise ConfigError(f"--duration is {args.duration:g}; expected seconds in (0, 86400].")
        changes["duration_s"] = args.duration
    if args.pairs is not None:
        if not 1 <= args.pairs <= 256:
            raise ConfigError(f"--pairs is {args.pairs}; expected an integer from 1 to 256.")
        changes["pairs"] = args.pairs
    if args.ramp is not None:
        if not 0 <= args.ramp <= 3600:
            raise ConfigError(f"--ramp is {args.ramp:g}; expected seconds in [0, 3600].")
        changes["join_ramp_s"] = args.ramp
    if args.out is not None:
        changes["out_dir"] = args.out
    if args.duplex:
        changes["mode"] = "duplex"
    agent = _agent(args, config)
    if agent is not None:
        changes["agent"] = agent
    if args.probe is not None:
        changes["probe"] = dataclasses.replace(config.probe or ProbeConfig(), file=args.probe)
    if args.no_probe:
        changes["probe"] = None
    if changes:
        config = config.replace(**changes)
    if config.agent is not None:
        if args.probe is not None:
            raise ConfigError(
                "--probe is for a run of our own two agents; with --agent the Customer says"
                " the --say files instead."
            )
        _check_turns(config)
        config = config.replace(probe=None)
    elif config.probe is not None and config.probe.file is not None:
        load_probe_file(config.probe.file, (config.customer_hz, config.support_hz))  # fail now
    if config.thresholds and not args.no_verify:
        # A typo in a threshold should fail now, not after the whole run.
        import verify

        try:
            verify.Thresholds.from_dict(config.thresholds)
        except verify.VerifyError as exc:
            raise ConfigError(f"{config.source}: {exc}.") from None
    try:
        config.out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the output folder {config.out_dir} ({exc.strerror}); pass --out PATH."
        ) from None
    if not os.access(config.out_dir, os.W_OK):
        raise ConfigError(f"the output folder {config.out_dir} is not writable; pass --out PATH.")
    return config


def _agent(args: argparse.Namespace, config: Config) -> AgentSpec | None:
    """The agent under test as the options change the config's; None: unchanged."""
    if args.agent is None and args.agent_cmd is None and args.say is None and args.script is None:
        return None
    if args.say is not None and args.script is not None:
        raise ConfigError(
            "--say and --script are both given; expected one of them: a script's turns name "
            "their own files ('say')."
        )
    base = config.agent
    if args.agent is None and base is None:
        given = (
            "--agent-cmd"
            if args.agent_cmd is not None
            else ("--say" if args.say is not None else "--script")
        )
        raise ConfigError(f"{given} needs --agent NAME (or 'agent.name' in {config.source}).")
    spec = base or AgentSpec(args.agent)
    changes: dict[str, Any] = {}
    if args.agent is not None:
        changes["name"] = args.agent
    if args.agent_cmd is not None:
        changes["cmd"] = args.agent_cmd
    if args.say is not None:  # the option wins over the file's say or script
        changes.update(say=tuple(args.say), script=None)
    if args.script is not None:
        changes.update(say=(), script=args.script)
    try:
        return dataclasses.replace(spec, **changes)
    except ConfigError as exc:
        raise ConfigError(f"{str(exc).replace('agent.', '--agent ', 1)}") from None


def _check_turns(config: Config) -> None:
    """Every --say file (or the script and its every turn) is audio, and the conversation holds
    at least one turn."""
    from pipeline.agent.conversation import utterances_of
    from pipeline.agent.utterances import needed_s

    assert config.agent is not None
    utterances = utterances_of(config)
    need = needed_s(utterances, config.agent.answer_window_s)
    if need > config.duration_s:
        raise ConfigError(
            f"--duration is {config.duration_s:g} s; expected at least {need:.1f} s: an answer "
            f"window, the first utterance ({utterances[0].samples / SAMPLE_RATE:.1f} s) and its "
            "answer window."
        )


def _check_ray(args: argparse.Namespace, config: Config) -> None:
    """With --ray: a valid address, Ray installed (the extra), a kind of run it can place."""
    if args.ray is None:
        return
    from pipeline.cluster.connection import check_address, require_ray

    check_address(args.ray)
    if config.agent is not None:
        raise ConfigError("--ray runs our own tone conversations; --agent runs on one machine.")
    require_ray()


async def _capture(config: Config, ray_address: str | None = None) -> list[Outcome]:
    stop = StopSignal()
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    names = {signal.SIGINT: "SIGINT (Ctrl-C)", signal.SIGTERM: "SIGTERM"}

    def on_signal(sig: signal.Signals) -> None:
        if stop.is_set() and main is not None:
            main.cancel()  # a second signal: stop waiting for a clean end
            return
        logger.warning("{} received; stopping the run and closing the evidence", names[sig])
        stop.set(f"interrupted by {names[sig]}.")

    for sig in names:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        if ray_address is not None:  # each conversation a Ray task (see pipeline.cluster)
            from pipeline.cluster.driver import capture as capture_on_ray

            return await capture_on_ray(config, ray_address, stop=stop)
        # More than one pair: one worker process per conversation (see pipeline.worker).
        return await capture(config, stop=stop, processes=config.pairs > 1)
    finally:
        for sig in names:
            loop.remove_signal_handler(sig)


def _verify(outcome: Outcome, key_path: Path | None) -> dict[str, Any] | None:
    """Write and sign the run's report; its figures, or None when it could not be made."""
    import verify

    try:
        result = verify.write_report(outcome.run_dir, key_path=key_path)
    except verify.VerifyError as exc:
        outcome.passed, outcome.failures = False, [str(exc)]
        return None
    except Exception as exc:  # verify's own fault: report it in one line, keep the evidence
        log = crash_log(exc)
        outcome.passed, outcome.failures = (
            False,
            [f"verification could not run: {redact(repr(exc))} (traceback in {log})"],
        )
        return None
    outcome.passed, outcome.failures = bool(result.passed), list(result.failures)
    outcome.verdict, outcome.verdict_reason = result.status, result.reason
    return result.report


def crash_log(exc: BaseException) -> Path:
    """Write `exc`'s traceback (redacted) to a file of its own and return its path."""
    import tempfile
    import traceback

    text = redact("".join(traceback.format_exception(exc)))
    with tempfile.NamedTemporaryFile(
        "w", prefix="echoproof-error-", suffix=".log", delete=False, encoding="utf-8"
    ) as f:
        f.write(text)
    return Path(f.name)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code."""
    try:
        return _main(argv)
    except KeyboardInterrupt:  # Ctrl-C before the run's own handlers were in place
        print("error: interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    _setup_logging()
    try:
        config = _configure(args)
        _check_ray(args, config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        outcomes = asyncio.run(_capture(config, args.ray))
    except ConnectError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONNECT
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("error: interrupted before the evidence was complete.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug, not a user error: one line, the traceback in a file
        log = crash_log(exc)
        print(
            f"error: unexpected failure, a bug in echoproof: {redact(repr(exc))}; "
            f"the traceback is in {log}.",
            file=sys.stderr,
        )
        return EXIT_BUG

    try:
        for o in outcomes:
            _print_outcome(o, config, verify=not args.no_verify)
    except KeyboardInterrupt:
        print("error: interrupted while verifying; the evidence is complete.", file=sys.stderr)
        return EXIT_INTERRUPTED
    sys.stdout.flush()
    return _exit_code(outcomes)


def _print_outcome(o: Outcome, config: Config, *, verify: bool) -> None:
    """One run's statistics and, with `verify`, its report's table and verdict."""
    if config.agent is None:
        print(statistics_table(o.run_id, o.status, o.customer, o.support))
    else:  # the agent's own side is not ours to count
        c = o.customer
        print(
            f"run {o.run_id}: {o.status}; the Customer sent {c.frames_sent} frames "
            f"({c.bytes_sent} bytes) and heard {c.frames_received} frames "
            f"({c.bytes_received} bytes) from agent {config.agent.name}"
        )
    if o.reason:
        print(f"reason: {o.reason}")
        if o.status == "failed":
            print(f"error: run {o.run_id} failed: {o.reason}", file=sys.stderr)
    if verify:
        report = _verify(o, config.signing_key)
        if report is not None and "conversation" in report:
            print(conversation_table(report))
        elif report is not None:
            print(proof_table(report))
        if o.passed:
            print(f"OK: {o.run_dir}")
        elif o.verdict == "inconclusive":
            print(f"INCONCLUSIVE: {o.run_dir}: {o.verdict_reason}")
        else:
            failures = "; ".join(o.failures or ["verification failed"])
            print(f"FAIL: {o.run_dir}: {failures}")
        if report is not None:  # whoever re-checks the run pins or trusts this key
            print(signer_line(report["key_id"]))
            print(f"page: {o.run_dir / HTML}")
    print()


def signer_line(key_id: str) -> str:
    """`signed by key 0123456789abcdef, untrusted (not in ~/.config/echoproof/trusted)`."""
    from verify import signing, trust

    return f"signed by key {signing.short_id(key_id)}, {trust.standing(key_id)}"


def _exit_code(outcomes: list[Outcome]) -> int:
    """The documented exit code of runs that all ended (see the module docstring)."""
    if any(o.status == "interrupted" for o in outcomes):
        return EXIT_INTERRUPTED
    if any(o.status != "complete" for o in outcomes):
        return EXIT_CONNECT
    if any(o.passed is False and o.verdict != "inconclusive" for o in outcomes):
        return EXIT_VERIFY_FAILED
    if any(o.verdict == "inconclusive" for o in outcomes):
        return EXIT_INCONCLUSIVE
    return EXIT_OK


def _exit(code: int) -> NoReturn:
    """Exit with ``code`` now that every file is closed and every line printed.

    The SDK's native core sometimes panics (SIGABRT) while the interpreter finalizes, after all
    our work is done; skipping finalization keeps the documented exit code.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    _exit(main())
