"""A script's words as speech: eSpeak NG (Debian's `espeak-ng`), run once per line at config time.

`render(text)` returns the WAV bytes `espeak-ng -v en-us --stdout` writes (22.05 kHz mono
16-bit); the Customer reads them with soundfile and resamples them as it does a `--say` file.
The text goes in on stdin, so words that start with a dash are not taken for options.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from pipeline.errors import ConfigError

ESPEAK = Path("/usr/bin/espeak-ng")
# American English: the accent most speech recognisers are trained on (PocketSphinx's English
# model recognised 13 of 15 sentences exactly in this voice, 6 in eSpeak's default `en`).
VOICE = "en-us"
TIMEOUT_S = 60.0


def binary() -> Path:
    """The espeak-ng program: Debian's, else the first on PATH; ConfigError when there is none."""
    if ESPEAK.is_file():
        return ESPEAK
    found = shutil.which("espeak-ng")
    if found is None:
        raise ConfigError(
            f"a script turn has text and no 'say' file, but eSpeak NG is not installed "
            f"({ESPEAK} is missing); expected espeak-ng (apt-get install espeak-ng) or a 'say' "
            "file for every turn."
        )
    return Path(found)


def render(text: str) -> bytes:
    """`text` spoken by eSpeak NG's `VOICE`, as WAV bytes."""
    program = binary()
    try:
        done = subprocess.run(
            [str(program), "-v", VOICE, "--stdin", "--stdout"],
            input=text.encode("utf-8"),
            capture_output=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"{program} could not speak {text!r} ({exc}).") from None
    if done.returncode != 0 or not done.stdout:
        why = done.stderr.decode("utf-8", "replace").strip() or f"exit status {done.returncode}"
        raise ConfigError(f"{program} could not speak {text!r} ({why}); expected WAV output.")
    return done.stdout
