"""fleet.html: the fleet's verdict in the run pages' style, a histogram of each headline figure
across the conversations, and the conversations worst first, each linking to its run's page."""

from __future__ import annotations

import re
from pathlib import Path

from benchmarks import _synth as synth
from tests.verify.test_fleet import FLEET, NAMES, _runs, _spec
from verify.__main__ import main
from verify.fleet import FLEET_HTML, fleet_dir_name


def test_the_fleet_page_shows_each_figures_spread_and_the_worst_first(
    tmp_path: Path, session_key: Path
) -> None:
    lost = synth.Spec(fleet=FLEET, customer=synth.Direction(lost=(2,)))
    root = _runs(tmp_path, session_key, [_spec(40.0), lost, _spec(80.0)])
    assert main([str(root)]) == 1
    page = (root / fleet_dir_name(FLEET) / FLEET_HTML).read_text("utf-8")

    assert 'class="banner fail" data-status="fail"><div class="word">FAIL</div>' in page
    assert "OK conversations 2 of 3" in page
    figures = re.findall(r'<figure data-figure="(\w+)"><svg', page)
    assert {"latency_median_ms", "latency_p95_ms", "gap_max_ms"} <= set(figures)
    assert "greeting_ms" not in figures  # no agent in these runs: no empty histogram
    assert "<th>longest gap (ms)</th>" in page
    assert "<th>response p95 (ms)</th>" not in page  # nor an empty column
    histogram = re.search(r'data-figure="latency_median_ms">(.*?)</figure>', page)
    assert histogram is not None
    bars = re.findall(r"<title>(\d+) in ", histogram.group(1))
    assert sum(int(n) for n in bars) == 3  # every conversation in one bar
    links = re.findall(r'<tr class="(\w+)"><td><a href="\.\./([^/]+)/report\.html">', page)
    assert links[0] == ("fail", NAMES[1])  # worst first
    assert sorted(name for _, name in links) == sorted(NAMES[:3])
    assert "http://" not in page and "https://" not in page
