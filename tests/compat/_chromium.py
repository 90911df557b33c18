"""Where the browser tests find Chromium, Node and compat/node_modules, and why they skip.

`nox -s compat` installs them and sets ECHOPROOF_COMPAT_REQUIRED: then a missing piece fails a
test instead of skipping it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

COMPAT = Path(__file__).resolve().parents[2] / "compat"
CHROMIUM = os.environ.get("ECHOPROOF_CHROMIUM", "/usr/bin/chromium")
NODE = shutil.which("node")
REQUIRED = os.environ.get("ECHOPROOF_COMPAT_REQUIRED") == "1"


def missing(*packages: str) -> str | None:
    """Why a browser test needing compat/node_modules' `packages` cannot run here, or None."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"no Chromium at {CHROMIUM} (run `nox -s compat`, or set ECHOPROOF_CHROMIUM)"
    if NODE is None:
        return "no node on PATH (run `nox -s compat` where Node.js is installed)"
    for package in packages:
        if not (COMPAT / "node_modules" / package / "package.json").is_file():
            return f"compat/node_modules/{package} is missing (run `nox -s compat`)"
    return None
