"""Real runs for the verify tests: the pipeline, the embedded server (port 0), two SDK agents.

Each run is recorded in a subprocess (its own event loop and SDK runtime) and left unsigned; the
`real_run` fixture (conftest.py) records one per session.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from tests.conftest import scaled

REPO = Path(__file__).resolve().parents[2]
DURATION_S = 6

_RECORD = textwrap.dedent(
    """
    import asyncio, json, os, secrets, sys
    from pathlib import Path

    import pipeline
    from echoproof import sfu

    async def main(out: Path) -> None:
        key, secret = "verifytests", "s3cret-" + secrets.token_hex(16)
        outages = %(outages)s
        impairment = sfu.Impairment(outages=outages) if outages else None
        async with sfu.serve(
            host="127.0.0.1", port=0, api_key=key, api_secret=secret, impairment=impairment
        ) as srv:
            config_path = out / "config.json"
            config_path.write_text(json.dumps({
                "livekit": {"url": srv.url, "api_key": key, "api_secret": secret},
                "duration_s": %(duration)s, "out_dir": str(out / "runs"), **%(config)s
            }))
            outcomes = await pipeline.capture(pipeline.load_config(config_path, {}))
        config_path.unlink()
        print(json.dumps([[str(o.run_dir), o.status] for o in outcomes]))

    asyncio.run(main(Path(sys.argv[1])))
    # as the CLI does: the SDK's native core may abort while the interpreter finalises
    sys.stdout.flush()
    os._exit(0)
    """
)


def record(out: Path, duration: int, config: dict[str, Any], outages: tuple[Any, ...]) -> Path:
    script = _RECORD % {"duration": duration, "config": repr(config), "outages": repr(outages)}
    proc = subprocess.run(
        [sys.executable, "-c", script, str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=scaled(120),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir, status), *_ = json.loads(proc.stdout.strip().splitlines()[-1])
    assert status == "complete", (run_dir, status)
    return Path(run_dir)
