"""`python -m verify PATH`: re-check run folders, print OK/FAIL per run, and a summary per fleet.

Exit 0 when every run is OK, 1 when any FAILs, 2 on a usage error, 4 when none FAILs but one or
more are INCONCLUSIVE (a threshold failed while the host was stalled: see verify.host). The runs
of a fleet (`--pairs N`, two or more of them found) count by their fleet's verdict instead
(`verify.fleet`: `fleet-<id>/fleet.json` beside them).

python -m verify recordings/                 # every run folder under recordings/
python -m verify recordings/<run> --key signer.pub.pem --json --junit verify.xml
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from xml.etree import ElementTree as ET

from verify.check import CheckResult, check
from verify.errors import VerifyError
from verify.evidence import SIGNER_KEY
from verify.fleet import FleetSummary, group, summarise
from verify.quality import RECHECK_ALL_UP_TO, RECHECK_DRAWN, RECHECK_LOWEST

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INCONCLUSIVE = 0, 1, 2, 4


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m verify",
        description="Re-check echoproof run folders: signature, evidence hashes, every figure and "
        "the verdict. Exit 0 when every run is OK, 1 when any FAILs, 2 on a usage error, 4 when "
        "none FAILs but some are INCONCLUSIVE (the host stalled when a threshold failed).",
    )
    parser.add_argument(
        "paths", type=Path, nargs="+", metavar="PATH", help="a run folder, or a folder of runs"
    )
    parser.add_argument(
        "--key",
        type=Path,
        help="the trusted signer's public key (PEM). Without it a run is checked against the "
        f"{SIGNER_KEY} in its own folder, which proves integrity but not who signed.",
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
    return parser


def junit_xml(results: Sequence[CheckResult], fleets: Sequence[FleetSummary] = ()) -> bytes:
    """The results as a JUnit XML test suite, one test case per run (conversation) and one per
    fleet; an inconclusive one is skipped, with what spoiled it as the message."""
    cases = [(r.run, r.status, r.reason, r.reasons) for r in results]
    cases += [(f"fleet {f.fleet_id}", f.status, f.reason, []) for f in fleets]
    suite = ET.Element(
        "testsuite",
        name="echoproof.verify",
        tests=str(len(cases)),
        failures=str(sum(status == "fail" for _, status, _, _ in cases)),
        errors="0",
        skipped=str(sum(status == "inconclusive" for _, status, _, _ in cases)),
    )
    for name, status, reason, reasons in cases:
        case = ET.SubElement(suite, "testcase", classname="echoproof.verify", name=name)
        if status in ("fail", "inconclusive"):
            tag = "failure" if status == "fail" else "skipped"
            ET.SubElement(case, tag, message=reason).text = "\n".join(reasons or [reason])
    return ET.tostring(suite, encoding="utf-8", xml_declaration=True)


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        results = [r for path in args.paths for r in check(path, key=args.key, full=args.full)]
    except VerifyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
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
    return exit_code([*(r.status for r in alone), *(f.status for f in fleets)])


def line(result: CheckResult) -> str:
    """`OK: <run>`, `FAIL: <run>: <reasons>` or `INCONCLUSIVE: <run>: <the host stall>`."""
    if result.status == "ok":
        return f"OK: {result.run}"
    return f"{result.status.upper()}: {result.run}: {result.reason}"


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
