"""`python -m verify PATH`: re-check run folders, print OK/FAIL per run, a summary per fleet, and
where the pages are (`page: <fleet.html>` per fleet, `page: <report.html>` per other run;
`--open` opens them in the user's browser).

Exit 0 when every run is OK, 1 when any FAILs, 2 on a usage error, 4 when none FAILs but one or
more are INCONCLUSIVE (a threshold failed while the host was stalled: see verify.host). The runs
of a fleet (`--pairs N`, two or more of them found) count by their fleet's verdict instead
(`verify.fleet`: `fleet-<id>/fleet.json` beside them).

python -m verify recordings/                 # every run folder under recordings/
python -m verify recordings/<run> --key signer.pub.pem --json --junit verify.xml
python -m verify recordings/<run> --open     # and open its report.html in the browser
"""

from __future__ import annotations

import argparse
import json
import sys
import webbrowser
from collections.abc import Sequence
from pathlib import Path
from xml.etree import ElementTree as ET

from verify.check import CheckResult, check
from verify.errors import VerifyError
from verify.evidence import HTML, SIGNER_KEY
from verify.fleet import FLEET_HTML, FleetSummary, group, summarise

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
        results = [r for path in args.paths for r in check(path, key=args.key)]
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


def pages(alone: Sequence[CheckResult], fleets: Sequence[FleetSummary]) -> list[Path]:
    """Where the pages are: each fleet's fleet.html, and the report.html of each run of no fleet
    (a run verified without its HTML has none)."""
    found = [f.path.with_name(FLEET_HTML) for f in fleets]
    found += [Path(r.run) / HTML for r in alone if (Path(r.run) / HTML).is_file()]
    return list(dict.fromkeys(found))


def line(result: CheckResult) -> str:
    """`OK: <run>`, `FAIL: <run>: <reasons>` or `INCONCLUSIVE: <run>: <the host stall>`."""
    if result.status == "ok":
        return f"OK: {result.run}"
    return f"{result.status.upper()}: {result.run}: {result.reason}"


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
