"""`python -m verify` enforces the whole published report schema: one test per keyword it uses."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import verify
from benchmarks import _synth as synth
from verify.check import report_schema, shape_errors

Edit = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Edit:
    def edit(report: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = report
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        node[int(last) if last.isdigit() else last] = value

    return edit


def _delete(path: str) -> Edit:
    def edit(report: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = report
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        del node[last]

    return edit


CASES = [
    ("type", _set("directions.0.frames_sent", "1183"),
     "report.directions[0].frames_sent is \"1183\", expected integer"),
    ("required", _delete("verdict.status"), "report.verdict has no field 'status'"),
    ("additionalProperties false, top", _set("extra", 1),
     "report has an unexpected field 'extra'"),
    ("additionalProperties false, nested", _set("directions.1.latency_ms.mean", 1.0),
     "report.directions[1].latency_ms has an unexpected field 'mean'"),
    ("additionalProperties schema", lambda r: r["evidence"].update({"host.csv": 7}),
     "report.evidence.host.csv is 7, expected string"),
    ("items", _set("verdict.failures", [3]), "report.verdict.failures[0] is 3, expected string"),
    ("minimum", _set("directions.0.bursts_lost", -1),
     "report.directions[0].bursts_lost is -1, expected at least 0"),
    ("enum", _set("verdict.status", "maybe"),
     "report.verdict.status is \"maybe\", expected one of ['passed', 'failed', 'inconclusive']"),
    ("const", _set("schema", "echoproof.report/2"),
     "report.schema is \"echoproof.report/2\", expected \"echoproof.report/1\""),
    ("pattern", lambda r: r["evidence"].update({"host.csv": "not-hex"}),
     "report.evidence.host.csv is \"not-hex\", expected a string matching ^[0-9a-f]{64}$"),
]  # fmt: skip


@pytest.mark.parametrize(("keyword", "edit", "message"), CASES, ids=[c[0] for c in CASES])
def test_each_keyword_is_enforced(
    signed_run: Path, session_key: Path, keyword: str, edit: Edit, message: str
) -> None:
    """A report breaking one schema keyword, re-signed by the real key, FAILs naming the place."""
    report = json.loads((signed_run / "report.json").read_bytes())
    edit(report)
    synth.resign(signed_run, report, session_key)
    result = verify.check(signed_run)[0]
    assert result.status == "fail"
    assert result.reason == f"report.json does not match its schema: {message}"


def test_every_keyword_in_the_schema_has_a_case() -> None:
    """The cases above cover every validation keyword the published schema uses."""
    used: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            used.update(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(report_schema())
    annotations = {"$schema", "$id", "title", "description", "properties"}
    names = {c[0].split(" ")[0].split(",")[0] for c in CASES}
    # property names inside "properties" are walked too: keep only JSON Schema keywords
    keywords = {
        k for k in used if k in {"type", "required", "additionalProperties", "items", "minimum",
                                 "enum", "const", "pattern", "maximum", "format", "oneOf",
                                 "anyOf", "allOf", "minItems", "maxItems", "$ref"}
    }  # fmt: skip
    assert keywords - annotations <= names, keywords - names


def test_a_valid_report_has_no_schema_error(signed_run: Path) -> None:
    """The report the verifier writes matches its own schema."""
    assert shape_errors(json.loads((signed_run / "report.json").read_bytes())) == []
