"""The verify stage: figures from a run's evidence, a signed report, and re-checking it later.

    result = verify.write_report("recordings/<run-id>")   # report.json, report.dsse.json, HTML
    for r in verify.check("recordings/"):                  # signature, hashes, every figure
        print("OK" if r.ok else f"FAIL: {r.reason}", r.signer, r.trusted)
    verify.check("recordings/", key="ci-signer.pub.pem")   # only that signer passes

Runs without livekit or aiortc installed (an archive machine needs numpy, numba, cryptography).
"""

from verify.check import CheckResult, check
from verify.errors import EvidenceError, SignatureError, VerifyError
from verify.figures import analyse
from verify.report import ReportResult, canonical_json, write_report
from verify.thresholds import Thresholds

__all__ = [
    "CheckResult",
    "EvidenceError",
    "ReportResult",
    "SignatureError",
    "Thresholds",
    "VerifyError",
    "analyse",
    "canonical_json",
    "check",
    "write_report",
]
