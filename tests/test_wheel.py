"""The installed names: the wheel puts `dsp`, `echoproof`, `pipeline` and `verify` at the top of
site-packages, and nothing else (a generic name such as `sfu` would clash with another
distribution's files)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import scaled

REPO = Path(__file__).resolve().parents[1]


def test_the_wheel_installs_only_our_four_top_level_names(tmp_path: Path) -> None:
    """Build the wheel from this tree; its top-level entries are the four packages and the
    distribution's metadata folder, and every package ships its `__init__.py`."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
        check=True,
        timeout=scaled(300),
        capture_output=True,
    )
    [wheel] = tmp_path.glob("echoproof-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/", 1)[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {
        "dsp",
        "echoproof",
        "pipeline",
        "verify",
    }
    for package in ("dsp", "echoproof", "echoproof/sfu", "pipeline", "verify"):
        assert f"{package}/__init__.py" in names
    assert "verify/report.schema.json" in names
    assert {"verify/report.css", "verify/report.js"} <= set(names)  # the pages inline them
    [dist_info] = [t for t in top if t.endswith(".dist-info")]
    entry_points = zipfile.ZipFile(wheel).read(f"{dist_info}/entry_points.txt").decode()
    assert "echoproof-sfu = echoproof.sfu.__main__:main" in entry_points
