"""The shell every page of verify shares (`report.html`, `fleet.html`): one style, the players'
script, both inlined so that a page works offline from its folder (no CDN, no request).

`report.css` and `report.js` are package files beside this module: edited as CSS and
JavaScript, inlined as the page is written.
"""

from __future__ import annotations

import functools
import html
from importlib import resources


@functools.cache
def _asset(name: str) -> str:
    return resources.files("verify").joinpath(name).read_text("utf-8")


def document(title: str, body: str, *, script: bool = False) -> str:
    """A whole page: `body` (HTML) under `title`, the shared style, and with `script` the
    players' script after the body (it finds its elements on load)."""
    js = f"<script>{_asset('report.js')}</script>" if script else ""
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_asset('report.css')}</style></head>\n"
        f"<body>\n{body}\n{js}</body></html>\n"
    )


def number(value: float | int | None, unit: str = "") -> str:
    """A figure as the page shows it: milliseconds to 0.1 ms, others as they are; "n/a" when
    the run has none."""
    if value is None:
        return "n/a"
    if isinstance(value, float) and unit == "ms":
        return f"{value:.1f}"
    return f"{value:g}"
