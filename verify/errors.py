"""Errors of the verify stage.

Every error raised on purpose derives from :class:`VerifyError`, so a caller (the pipeline, the CLI)
catches one type. Messages are one sentence that says what was found and what was expected, and name
the file concerned.

- :class:`EvidenceError`: a file of the run folder is missing, unreadable or not what the evidence
  contract (docs/evidence.md) describes.
- :class:`SignatureError`: a key, a DSSE envelope or the statement it signs is malformed, or a
  signature does not verify.
"""

from __future__ import annotations


class VerifyError(Exception):
    """Root of every error the verify stage raises on purpose."""


class EvidenceError(VerifyError):
    """A run folder's file is missing, malformed or inconsistent with the evidence contract."""


class SignatureError(VerifyError):
    """A signing key, a signature envelope or its statement is malformed, or a signature does not
    verify."""
