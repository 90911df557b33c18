"""`python -m verify PATH`: re-check run folders, print OK/FAIL per run.

Exit 0 when every run is OK, 1 when any FAILs, 2 on a usage error, 4 when none FAILs but one or
more are INCONCLUSIVE (a threshold failed while the host was stalled: see verify.host).

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
    return parser


def junit_xml(results: Sequence[CheckResult]) -> bytes:
    """The results as a JUnit XML test suite, one test case per run; an inconclusive run is
    skipped, with the host stall that spoiled it as the message."""
    suite = ET.Element(
        "testsuite",
        name="echoproof.verify",
        tests=str(len(results)),
        failures=str(sum(r.status == "fail" for r in results)),
        errors="0",
        skipped=str(sum(r.status == "inconclusive" for r in results)),
    )
    for r in results:
        case = ET.SubElement(suite, "testcase", classname="echoproof.verify", name=r.run)
        if r.status == "fail":
            failure = ET.SubElement(case, "failure", message=r.reason)
            failure.text = "\n".join(r.reasons)
        elif r.status == "inconclusive":
            skipped = ET.SubElement(case, "skipped", message=r.reason)
            skipped.text = "\n".join(r.reasons)
    return ET.tostring(suite, encoding="utf-8", xml_declaration=True)


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        results = [r for path in args.paths for r in check(path, key=args.key)]
    except VerifyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps([r.__dict__ for r in results], indent=2))
    else:
        for r in results:
            print(line(r))
    if args.junit is not None:
        try:
            args.junit.write_bytes(junit_xml(results))
        except OSError as exc:
            print(f"error: cannot write {args.junit}: {exc.strerror}", file=sys.stderr)
            return EXIT_USAGE
    return exit_code(results)


def line(result: CheckResult) -> str:
    """`OK: <run>`, `FAIL: <run>: <reasons>` or `INCONCLUSIVE: <run>: <the host stall>`."""
    if result.status == "ok":
        return f"OK: {result.run}"
    return f"{result.status.upper()}: {result.run}: {result.reason}"


def exit_code(results: Sequence[CheckResult]) -> int:
    """1 when any run FAILs, else 4 when any is INCONCLUSIVE, else 0."""
    if any(r.status == "fail" for r in results):
        return EXIT_FAIL
    if any(r.status == "inconclusive" for r in results):
        return EXIT_INCONCLUSIVE
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
