"""`python -m verify PATH`: re-check run folders, print OK/FAIL per run, a summary per fleet, and
where the pages are (`page: <fleet.html>` per fleet, `page: <report.html>` per other run;
`--open` opens them in the user's browser).

Exit 0 when every run is OK, 1 when any FAILs, 2 on a usage error, 4 when none FAILs but one or
more are INCONCLUSIVE (a threshold failed while the host was stalled: see verify.host). The runs
of a fleet (`--pairs N`, two or more of them found) count by their fleet's verdict instead
(`verify.fleet`: `fleet-<id>/fleet.json` beside them). Each run's line names the key that signed
it, whether that key is trusted (verify.trust) and the envelope's format (verify.attestation).

python -m verify recordings/                 # every run folder under recordings/
python -m verify recordings/<run> --key signer.pub.pem --json --junit verify.xml
python -m verify --trust ci.pub.pem          # trust a key from now on
python -m verify recordings/ --require-trusted   # CI: an untrusted signer FAILs
python -m verify recordings/<run> --open     # and open its report.html in the browser
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import webbrowser
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TextIO
from xml.etree import ElementTree as ET

from verify import progress, signing, trust
from verify.check import CheckResult, check
from verify.errors import VerifyError
from verify.evidence import HTML, SAMPLE_RATE, SAMPLE_WIDTH, SIGNER_KEY
from verify.fleet import FLEET_HTML, FleetSummary, group, summarise
from verify.quality import RECHECK_ALL_UP_TO, RECHECK_DRAWN, RECHECK_LOWEST

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INCONCLUSIVE = 0, 1, 2, 4


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m verify",
        description="Re-check echoproof run folders: signature, evidence hashes, every figure and "
        "the verdict. Exit 0 when every run is OK, 1 when any FAILs, 2 on a usage error, 4 when "
        "none FAILs but some are INCONCLUSIVE (the host stalled when a threshold failed). Each "
        "run's line names the key that signed it and whether that key is trusted.",
    )
    parser.add_argument(
        "paths", type=Path, nargs="*", metavar="PATH", help="a run folder, or a folder of runs"
    )
    parser.add_argument(
        "--key",
        type=Path,
        metavar="PUB",
        help="pin the signer's public key (PEM): a run signed by any other key FAILs. Without "
        f"it a run is checked against the {SIGNER_KEY} in its own folder, which shows the files "
        "are what that key signed, but anyone who edits them can re-sign with a key of their own: "
        "the signer is trusted only when its key is in the trusted-keys folder.",
    )
    parser.add_argument(
        "--trusted",
        type=Path,
        metavar="DIR",
        help=f"the trusted-keys folder (default ${trust.TRUSTED_ENV}, else "
        f"{trust.shown(trust.home_dir())}): public keys (*.pem) whose runs are trusted",
    )
    parser.add_argument(
        "--require-trusted",
        action="store_true",
        help="FAIL a run whose signer is not trusted (not --key, not in the trusted-keys folder)",
    )
    parser.add_argument(
        "--trust",
        type=Path,
        metavar="PUB",
        help="add the public key PUB (PEM) to the trusted-keys folder, then check any PATH",
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="score every probe segment again; by default a direction with more than "
        f"{RECHECK_ALL_UP_TO} segments (a long run) is scored again on the {RECHECK_LOWEST} the "
        f"signed report scored lowest and {RECHECK_DRAWN} drawn at random, the others carried",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--junit", type=Path, metavar="FILE", help="also write JUnit XML to FILE")
    parser.add_argument(
        "--open",
        action="store_true",
        help="open the page (each fleet's fleet.html, else each run's report.html) in the browser",
    )
    return parser


def junit_xml(results: Sequence[CheckResult], fleets: Sequence[FleetSummary] = ()) -> bytes:
    """The results as a JUnit XML test suite, one test case per run (conversation) and one per
    fleet; an inconclusive one is skipped, with what spoiled it as the message."""
    cases: list[tuple[str, str, str, list[str], CheckResult | None]]
    cases = [(r.run, r.status, r.reason, r.reasons, r) for r in results]
    cases += [(f"fleet {f.fleet_id}", f.status, f.reason, [], None) for f in fleets]
    suite = ET.Element(
        "testsuite",
        name="echoproof.verify",
        tests=str(len(cases)),
        failures=str(sum(case[1] == "fail" for case in cases)),
        errors="0",
        skipped=str(sum(case[1] == "inconclusive" for case in cases)),
    )
    for name, status, reason, reasons, result in cases:
        case = ET.SubElement(suite, "testcase", classname="echoproof.verify", name=name)
        if result is not None:  # a run: who signed it, trusted or not, in properties and words
            properties = ET.SubElement(case, "properties")
            for key, value in _seal(result).items():
                ET.SubElement(properties, "property", name=key, value=str(value))
        if status in ("fail", "inconclusive"):
            tag = "failure" if status == "fail" else "skipped"
            ET.SubElement(case, tag, message=reason).text = "\n".join(reasons or [reason])
        if result is not None:
            ET.SubElement(case, "system-out").text = seal_note(result)
    return ET.tostring(suite, encoding="utf-8", xml_declaration=True)


def _seal(result: CheckResult) -> dict[str, object]:
    """The signer's properties of a run's JUnit test case (the JSON's field names)."""
    return {
        "signer": result.signer or "",
        "trusted": str(result.trusted).lower(),
        "trusted_by": result.trusted_by or "",
        "envelope": result.envelope or "",
    }


def seal_note(result: CheckResult) -> str:
    """`key 0123456789abcdef untrusted, in-toto`: who signed a run, trusted or not, and the
    envelope's format (`legacy`: signed before the in-toto statement)."""
    note = trust.Signer(result.signer, result.trusted_by).note()
    return f"{note}, {result.envelope}" if result.envelope else note


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.paths and args.trust is None:
        parser.error("give a PATH to check, or --trust PUB")
    folder = args.trusted if args.trusted is not None else trust.default_dir()
    try:
        if args.trust is not None:
            kid, _ = trust.add(args.trust, folder)
            print(f"trusted key {signing.short_id(kid)} (in {trust.shown(folder)})")
        results = [
            r
            for path in args.paths
            for r in check(
                path,
                key=args.key,
                trusted=folder,
                require_trusted=args.require_trusted,
                full=args.full,
                on_run=_progress(sys.stderr),
            )
        ]
    except VerifyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not args.paths:
        return EXIT_OK
    try:
        fleets = summarise(results)
    except OSError as exc:
        print(f"error: cannot write a fleet summary: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps([_as_json(r, fleets) for r in results], indent=2))
    else:
        for r in results:
            print(line(r))
            for sampled in sample_lines(r):
                print(sampled)
        for f in fleets:
            print(fleet_line(f))
    if args.junit is not None:
        try:
            args.junit.write_bytes(junit_xml(results, fleets))
        except OSError as exc:
            print(f"error: cannot write {args.junit}: {exc.strerror}", file=sys.stderr)
            return EXIT_USAGE
    in_fleets = {run.run for members in group(results).values() for run in members}
    alone = [r for r in results if r.run not in in_fleets]
    shown = pages(alone, fleets)
    if not args.json:
        for path in shown:
            print(f"page: {path}")
    if args.open:
        for path in shown:
            webbrowser.open(path.resolve().as_uri())
        if not shown:
            print("no page to open: the runs have no report.html", file=sys.stderr)
    return exit_code([*(r.status for r in alone), *(f.status for f in fleets)])


# A run whose longest recording is at least this long says when its re-check begins and how far
# it has got, even when nobody watches the terminal (a CI log): it takes seconds to minutes.
LONG_RUN_MIN = 10.0
COLUMNS = 80
SHARE_WIDTH = len(" 100%")
QUARTERS = (0.25, 0.5, 0.75)  # off a terminal, a long run's progress is a line at each


def _progress(
    stream: TextIO, every_s: float = 0.5
) -> Callable[[int, int, Path], AbstractContextManager[None]]:
    """What shows, on `stream`, a run's re-check under way: on a terminal every run's line, its
    share done rewritten in place every `every_s`; elsewhere (a CI log) a long run's line, then
    a line at each quarter done. Each line within `COLUMNS`."""
    watched = stream.isatty()

    def began(i: int, n: int, run: Path) -> AbstractContextManager[None]:
        minutes = recorded_minutes(run)
        if watched:
            return _in_place(
                stream, progress_line(i, n, run, minutes, COLUMNS - SHARE_WIDTH), every_s
            )
        if minutes >= LONG_RUN_MIN:
            print(progress_line(i, n, run, minutes), file=stream, flush=True)
            return _by_quarters(stream, f"checking {i}/{n}:", every_s)
        return contextlib.nullcontext()

    return began


@contextlib.contextmanager
def _in_place(stream: TextIO, line: str, every_s: float) -> Iterator[None]:
    """`line` and the share done after it, rewritten in place; a newline at the end."""
    print(line, end="", file=stream, flush=True)
    try:
        with progress.metered(
            lambda share: print(f"\r{line} {share:4.0%}", end="", file=stream, flush=True),
            every_s,
        ):
            yield
    finally:
        print(file=stream, flush=True)


def _by_quarters(stream: TextIO, head: str, every_s: float) -> AbstractContextManager[None]:
    """A line `<head> 25% done` as each quarter is passed."""
    shown = 0

    def show(share: float) -> None:
        nonlocal shown
        while shown < len(QUARTERS) and share >= QUARTERS[shown]:
            print(f"{head} {QUARTERS[shown]:.0%} done", file=stream, flush=True)
            shown += 1

    return progress.metered(show, every_s)


def recorded_minutes(run: Path) -> float:
    """The length of the run's longest recording (its WAVs' sizes), in minutes."""
    sizes = [p.stat().st_size for p in run.glob("*.wav") if p.is_file()]
    return max(sizes, default=0) / (SAMPLE_RATE * SAMPLE_WIDTH * 60)


def progress_line(i: int, n: int, run: Path, minutes: float, width: int = COLUMNS) -> str:
    """`checking 2/5: <run>, 62 min of audio` within `width`: a long path loses its start."""
    head, tail = f"checking {i}/{n}: ", f", {minutes:.0f} min of audio"
    room = width - len(head) - len(tail)
    name = str(run)
    if len(name) > room:
        name = "..." + name[-(room - 3) :]
    return head + name + tail


def pages(alone: Sequence[CheckResult], fleets: Sequence[FleetSummary]) -> list[Path]:
    """Where the pages are: each fleet's fleet.html, and the report.html of each run of no fleet
    (a run verified without its HTML has none)."""
    found = [f.path.with_name(FLEET_HTML) for f in fleets]
    found += [Path(r.run) / HTML for r in alone if (Path(r.run) / HTML).is_file()]
    return list(dict.fromkeys(found))


def line(result: CheckResult) -> str:
    """`OK: <run> (<signer>)`, `FAIL: <run> (<signer>): <reasons>` or
    `INCONCLUSIVE: <run> (<signer>): <the host stall>`; <signer> as :func:`seal_note` says."""
    head = f"{result.status.upper()}: {result.run} ({seal_note(result)})"
    return head if result.status == "ok" else f"{head}: {result.reason}"


def sample_lines(result: CheckResult) -> list[str]:
    """Where the probe's MOS was re-checked on a sample: one line per direction, within 80
    columns, then how to re-check all."""
    if not result.quality_rechecked:
        return []
    lines = [
        f"  MOS re-checked on {len(r['scored'])} of {r['of']} segments, {label}"
        for label, r in sorted(result.quality_rechecked.items())
    ]
    return [*lines, "  (the lowest and a random draw; --full re-checks every segment)"]


def _as_json(result: CheckResult, fleets: Sequence[FleetSummary]) -> dict[str, object]:
    """A run's JSON entry; a run of a summarised fleet also names its fleet's verdict."""
    entry: dict[str, object] = dict(result.__dict__)
    for f in fleets:
        if any(row["run"] == Path(result.run).name for row in f.summary["runs"]):
            entry["fleet"] = {"id": f.fleet_id, "status": f.status, "summary": str(f.path)}
    return entry


def fleet_line(f: FleetSummary) -> str:
    """`FLEET <id> OK: 4 conversations (4 OK, 0 FAIL, 0 INCONCLUSIVE); <fleet.json>`, with the
    failed fleet thresholds after the counts."""
    c = f.summary["counts"]
    counts = (
        f"{f.summary['conversations']} conversations ({c['ok']} OK, {c['fail']} FAIL, "
        f"{c['inconclusive']} INCONCLUSIVE)"
    )
    why = f": {f.reason}" if f.reason else ""
    return f"FLEET {f.fleet_id} {f.status.upper()}: {counts}{why}; {f.path}"


def exit_code(statuses: Sequence[str]) -> int:
    """1 when any FAILs, else 4 when any is INCONCLUSIVE, else 0."""
    if "fail" in statuses:
        return EXIT_FAIL
    if "inconclusive" in statuses:
        return EXIT_INCONCLUSIVE
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
