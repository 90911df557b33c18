"""How every block of the configuration reads a field, and names a wrong one in one sentence.

Each message says where (`source`, the config file), which field, what was found (`kind`) and
what was expected; tests pin the wording.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from pipeline.errors import ConfigError


def unknown(block: dict[str, Any], known: Iterable[str], prefix: str, source: str) -> None:
    """ConfigError naming the first field of `block` not in `known` (`prefix` is the block's path,
    e.g. "agent.")."""
    known = list(known)
    extra = sorted(set(block) - set(known))
    if extra:
        raise ConfigError(
            f"{source} has an unknown field '{prefix}{extra[0]}'; expected one of "
            + ", ".join(f"'{prefix}{k}'" for k in known)
            + "."
        )


def is_number(value: Any) -> bool:
    """A finite JSON number (a boolean is not one)."""
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def number(value: Any, name: str, source: str) -> float:
    """`value` as a float, or ConfigError."""
    if not is_number(value):
        raise ConfigError(f"{source}: '{name}' is {kind(value)}; expected a number.")
    return float(value)


def integer(value: Any, name: str, source: str) -> int:
    """`value` as an int, or ConfigError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{source}: '{name}' is {kind(value)}; expected an integer.")
    return value


def boolean(value: Any, name: str, source: str) -> bool:
    """`value` as a bool, or ConfigError."""
    if not isinstance(value, bool):
        raise ConfigError(f"{source}: '{name}' is {kind(value)}; expected true or false.")
    return value


def string(value: Any, name: str, source: str) -> str:
    """`value` as a non-empty string, or ConfigError."""
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{source}: '{name}' is {kind(value)}; expected a non-empty string.")
    return value


def obj(value: Any, name: str, source: str) -> dict[str, Any]:
    """`value` as a JSON object, or ConfigError."""
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: '{name}' is {kind(value)}; expected an object.")
    return value


def kind(value: Any, *, hide: bool = False) -> str:
    """How a JSON value reads in an error message: its type and, unless hidden, the value."""
    if value is None:
        return "null"
    if hide:
        return {bool: "a boolean", int: "a number", float: "a number", str: "an empty string"}.get(
            type(value), "a list" if isinstance(value, list) else "an object"
        )
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, int | float):
        return f"{value!r} (a number)"
    if isinstance(value, str):
        return f"{value!r} (a string)" if value else "an empty string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
