"""The run folder the driver writes for a conversation whose folder never arrived (its node was
lost, killed or frozen; its task failed): every evidence file, empty, and a manifest of status
`failed` with the reason, so that `python -m verify` reports FAIL with that reason.

Ray kills a lost node's worker processes, so the node's own manifest stays `running` there; the
driver keeps the copy the task sent as the run began (participants, clock, probe) when there is
one.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path
from typing import Any

from echoproof.contract import ROLES, ContractError, Manifest
from pipeline.config import Config
from pipeline.recording import evidence


def write_failed_run(
    config: Config,
    run_id: str,
    reason: str,
    node: dict[str, Any] | None,
    seen: dict[str, Any] | None,
    *,
    embedded: bool,
) -> Path:
    """Write run folder `run_id` under the config's `out_dir` (replacing whatever is there),
    failed for `reason`; `seen` is the manifest the node sent as the run began, if any;
    `embedded`: the run started its server."""
    run_dir = config.out_dir / run_id
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    closers: list[Any] = [
        evidence.EventLog(run_dir / evidence.EVENTS),
        evidence.HostWriter(run_dir / evidence.HOST),
        *(evidence.WavWriter(run_dir / evidence.wav_name(r)) for r in ROLES),
        *(evidence.TimingWriter(run_dir / evidence.arrivals_name(r)) for r in ROLES),
        *(evidence.TimingWriter(run_dir / evidence.sent_name(r)) for r in ROLES),
        *(evidence.BurstsWriter(run_dir / evidence.bursts_name(r)) for r in ROLES),
    ]
    for closer in closers:
        closer.close()
    evidence.write_json_atomic(run_dir / evidence.RTC_STATS, evidence.no_rtc_stats(ROLES))
    manifest = dataclasses.replace(
        _manifest(config, run_id, seen),
        node=node,
        embedded_server=embedded,
        probe=None,  # no probe files: the folder holds no audio
        status="failed",
        reason=reason,
        ended_at=evidence.utc_iso(),
    )
    evidence.write_json_atomic(run_dir / evidence.MANIFEST, manifest.to_json())
    return run_dir


def _manifest(config: Config, run_id: str, seen: dict[str, Any] | None) -> Manifest:
    """The node's manifest when it sent one, else the driver's own account of the run."""
    if seen is not None:
        try:
            return dataclasses.replace(Manifest.from_json(seen), config=config.public())
        except ContractError:
            pass
    tones = {"customer": config.customer_hz, "support": config.support_hz}
    return Manifest(
        run_id=run_id,
        room=None,
        server_url=config.ws_url,
        mode=config.mode,
        participants={r: {"identity": "", "tone_hz": tones[r]} for r in ROLES},
        directions=evidence.directions(),
        burst={
            "duration_s": config.burst_s,
            "ramp_s": config.ramp_s,
            "amplitude": config.amplitude,
        },
        host={"file": evidence.HOST, "server_sampled": False},
        clock={"monotonic_ns": time.monotonic_ns(), "wall": evidence.utc_iso()},
        started_at=evidence.utc_iso(),
        duration_s=config.duration_s,
        versions=evidence.versions(),
        config=config.public(),
        fleet=None if config.fleet_id is None else {"id": config.fleet_id, "size": config.pairs},
    )
