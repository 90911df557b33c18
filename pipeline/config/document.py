"""Reading one file the user gives us (the config, a caller script): its text, then its one
JSON or YAML document, each mistake said in one sentence with where it is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import ConfigError

YAML_SUFFIXES = (".yaml", ".yml")


def read_text(path: Path, what: str, flag: str) -> str:
    """The text of the file at `path` (`what` names it, e.g. "config file"; `flag` is the option
    that gives it), or ConfigError."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist; pass {flag} PATH.") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} {path} is a directory; expected a file.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what} {path} cannot be read ({exc}).") from None


def decode_json(text: str, source: str) -> Any:
    """The JSON document in `text` (`source` names it in the message), or ConfigError."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{source} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."
        ) from None


def decode_yaml(text: str, source: str) -> Any:
    """The YAML document in `text` (safe: plain data only), or ConfigError."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = "" if mark is None else f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ConfigError(f"{source} is not valid YAML: {problem}{where}.") from None


def load(path: Path, what: str, flag: str) -> Any:
    """The document in the file at `path`: YAML when its name ends in .yaml or .yml, else JSON."""
    text = read_text(path, what, flag)
    source = f"{what} {path}"
    if path.suffix.lower() in YAML_SUFFIXES:
        return decode_yaml(text, source)
    return decode_json(text, source)
