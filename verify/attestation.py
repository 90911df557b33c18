"""What the envelope signs: an in-toto Statement v1 (https://github.com/in-toto/attestation).

Its `subject` lists every evidence file with its SHA-256, its `predicate` is the report, so tools
that know in-toto and DSSE (in-toto's libraries, securesystemslib, cosign) check a run without our
code. Envelopes signed before it carry the report itself (payload type `LEGACY_PAYLOAD_TYPE`);
they are still read, and said to be of the old format.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from verify.canonical import canonical_json
from verify.errors import SignatureError
from verify.evidence import ENVELOPE, REPORT

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
# Ours: the report's schema lives under the same (reserved, never resolving) domain.
PREDICATE_TYPE = "https://echoproof.invalid/report/v1"
LEGACY_PAYLOAD_TYPE = "application/vnd.echoproof.report+json"
DIGEST = "sha256"

# How an envelope was read, as `python -m verify` reports it.
IN_TOTO = "in-toto"
LEGACY = "legacy"
FORMATS = {PAYLOAD_TYPE: IN_TOTO, LEGACY_PAYLOAD_TYPE: LEGACY}


@dataclasses.dataclass(frozen=True)
class Signed:
    """What a verified envelope says: its `format`, the report as signed (its canonical bytes),
    and the evidence files it names with their digests (None in the old format, where only the
    report lists them)."""

    format: str
    report: bytes
    subjects: dict[str, Any] | None


def statement(report: dict[str, Any]) -> dict[str, Any]:
    """The in-toto Statement of `report`: its evidence files as subjects, itself as predicate."""
    return {
        "_type": STATEMENT_TYPE,
        "subject": [
            {"name": name, "digest": {DIGEST: digest}}
            for name, digest in sorted(report["evidence"].items())
        ],
        "predicateType": PREDICATE_TYPE,
        "predicate": report,
    }


def payload(report: dict[str, Any]) -> bytes:
    """The bytes the envelope signs (payload type `PAYLOAD_TYPE`)."""
    return canonical_json(statement(report))


def read(payload_type: str, signed: bytes) -> Signed:
    """What a verified payload of `payload_type` (one of `FORMATS`) says; raises
    :class:`SignatureError` when it is not the statement this module writes."""
    if payload_type == LEGACY_PAYLOAD_TYPE:
        return Signed(LEGACY, signed, None)
    try:
        value = json.loads(signed.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise SignatureError(
            f"{ENVELOPE} payload is not JSON, expected an in-toto Statement"
        ) from None
    if not isinstance(value, dict):
        raise SignatureError(f"{ENVELOPE} payload is not a JSON object, expected a Statement")
    for field, wanted in (("_type", STATEMENT_TYPE), ("predicateType", PREDICATE_TYPE)):
        if value.get(field) != wanted:
            raise SignatureError(
                f"{ENVELOPE} statement's {field} is {value.get(field)!r}, expected {wanted!r}"
            )
    predicate = value.get("predicate")
    if not isinstance(predicate, dict):
        raise SignatureError(f"{ENVELOPE} statement's predicate is not the report (an object)")
    return Signed(IN_TOTO, canonical_json(predicate), _subjects(value.get("subject")))


def _subjects(value: Any) -> dict[str, Any]:
    """Each subject's name and SHA-256. The digests' form is the report's schema's to judge:
    they must equal the report's `evidence` (:func:`subject_differences`)."""
    if not isinstance(value, list) or not value:
        raise SignatureError(f"{ENVELOPE} statement has no subject, expected the evidence files")
    subjects: dict[str, Any] = {}
    for i, entry in enumerate(value):
        name = entry.get("name") if isinstance(entry, dict) else None
        digest = entry.get("digest") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not isinstance(digest, dict) or DIGEST not in digest:
            raise SignatureError(
                f"{ENVELOPE} statement's subject[{i}] is not a file name with a {DIGEST} digest"
            )
        if name in subjects:
            raise SignatureError(f"{ENVELOPE} statement lists {name} twice")
        subjects[name] = digest[DIGEST]
    return subjects


def subject_differences(subjects: dict[str, Any], evidence: dict[str, Any]) -> list[str]:
    """Where the signed subjects and the report's list of evidence files disagree."""
    if subjects == evidence:
        return []
    names = sorted(set(subjects) ^ set(evidence)) or sorted(
        n for n in subjects if subjects[n] != evidence[n]
    )
    return [
        f"{ENVELOPE} statement's subjects differ from the evidence {REPORT} lists "
        f"(first at {names[0]})"
    ]
