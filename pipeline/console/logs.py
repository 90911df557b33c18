"""Logging for the CLI and its worker processes: loguru, with every token redacted.

`setup_logging` sends INFO and above to a sink (the CLI's stderr, or a worker's pipe to its
parent) and routes the SDK's `logging` warnings there too; `redact` hides anything shaped like a
token, in log lines and in the CLI's one-line errors.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from loguru import logger

# Anything shaped like a JWT (header.payload.signature, base64url) is a token: never print one.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def redact(text: str) -> str:
    """`text` with every token-shaped string replaced by `<redacted>`."""
    return _JWT.sub("<redacted>", text)


def setup_logging(sink: Any, format: str) -> None:
    """Send INFO and above (redacted) to `sink`; the SDK's `logging` warnings go there too."""
    logger.remove()

    def scrub(record: Any) -> None:
        record["message"] = redact(record["message"])

    logger.configure(patcher=scrub)
    logger.add(sink, level="INFO", format=format)

    # The SDK logs through `logging`; route its warnings through the same redaction.
    class _ToLoguru(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage()
            level = record.levelname if record.levelname in ("WARNING", "ERROR") else "DEBUG"
            if "v1 path" in message:  # the SDK's expected fallback to /rtc on the embedded server
                level = "DEBUG"
            logger.log(level, "{}: {}", record.name, message)

    logging.basicConfig(handlers=[_ToLoguru()], level=logging.WARNING, force=True)
