"""Run every benchmark, write ``benchmarks/results.json`` and print a summary table.

``python -m benchmarks [--quick] [AREA ...]``; ``nox -s bench`` runs it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

AREAS = ["dsp", "sfu", "verify", "pipeline", "impairment", "capacity"]
RESULTS = Path(__file__).with_name("results.json")


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), item, out)
    elif not isinstance(value, list):
        out[prefix] = value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("areas", nargs="*", help=f"areas to run (default: all of {AREAS})")
    parser.add_argument("--quick", action="store_true", help="shorter runs, fewer repeats")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.areas) - set(AREAS))
    if unknown:
        parser.error(f"unknown area {unknown[0]!r}; expected one of {', '.join(AREAS)}")

    results: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "quick": args.quick,
    }
    failed = []
    for area in args.areas or AREAS:
        try:
            module = importlib.import_module(f"benchmarks.{area}")
        except ModuleNotFoundError as exc:
            if exc.name == f"benchmarks.{area}":
                continue  # that area has no benchmark yet
            raise
        print(f"\n=== {area} ===", flush=True)
        started = time.perf_counter()
        try:
            results[area] = module.run(quick=args.quick)
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            failed.append(area)
            results[area] = {"error": f"{type(exc).__name__}: {exc}"}
            print(f"{area}: FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        results[area + "_wall_s"] = round(time.perf_counter() - started, 1)

    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    flat: dict[str, Any] = {}
    _flatten("", {k: v for k, v in results.items() if k not in ("machine", "quick")}, flat)
    width = max((len(k) for k in flat), default=10)
    print("\n=== summary ===")
    for key, value in flat.items():
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        print(f"{key:<{width}}  {shown}")
    print(f"\nwrote {RESULTS}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
