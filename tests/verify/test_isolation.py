"""verify and dsp import and run on an archive machine without livekit, aiortc or av."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import python_output, scaled

_BLOCKER = textwrap.dedent(
    """
    import sys

    class Refuse:
        blocked = ("livekit", "aiortc", "av", "aioice", "websockets")

        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in self.blocked:
                raise ImportError(f"{name} is not installed on this archive machine")
            return None

    sys.meta_path.insert(0, Refuse())
    """
)


def test_verify_runs_without_livekit(signed_run: Path) -> None:
    """A subprocess that refuses livekit/aiortc/av imports verify and dsp and re-checks a run."""
    code = _BLOCKER + textwrap.dedent(
        f"""
        import dsp, verify
        from verify.__main__ import main
        results = verify.check({str(signed_run)!r})
        assert results[0].ok, results[0].reason
        assert not [m for m in sys.modules if m.split(".")[0] in Refuse.blocked]
        print("isolated OK")
        """
    )
    assert python_output(code, 120) == "isolated OK"


def test_blocker_really_blocks() -> None:
    """The refusing finder does stop `import livekit` (so the test above can fail)."""
    code = _BLOCKER + "import livekit.rtc\n"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=scaled(60),
        check=False,
    )
    assert proc.returncode != 0
    assert "not installed on this archive machine" in proc.stderr
