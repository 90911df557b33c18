"""Argument checks shared by the public modules: each failure is one ``DspError`` sentence."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from dsp._errors import DspError

# The dtypes the kernels are compiled for; int16 is full scale at 32768, floats at 1.0.
SAMPLE_DTYPES = (np.dtype(np.int16), np.dtype(np.float32), np.dtype(np.float64))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def positive(name: str, value: Any) -> float:
    """A finite number > 0."""
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        raise DspError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def non_negative(name: str, value: Any) -> float:
    """A finite number >= 0."""
    if not _is_number(value) or not math.isfinite(value) or value < 0:
        raise DspError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def finite(name: str, value: Any) -> float:
    """Any finite number."""
    if not _is_number(value) or not math.isfinite(value):
        raise DspError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def count(name: str, value: Any, minimum: int = 1) -> int:
    """An integer >= ``minimum``."""
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < minimum:
        raise DspError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def amplitude(value: Any) -> float:
    """A linear amplitude in (0, 1], relative to full scale."""
    if not _is_number(value) or not math.isfinite(value) or not 0 < value <= 1:
        raise DspError(f"amplitude must be in (0, 1] of full scale, got {value!r}")
    return float(value)


def frequency(name: str, value: Any, sample_rate: float) -> float:
    """A frequency strictly between 0 and the Nyquist frequency."""
    freq = positive(name, value)
    if freq >= sample_rate / 2:
        raise DspError(
            f"{name} must be below the Nyquist frequency {sample_rate / 2} Hz, got {value!r}"
        )
    return freq


def frequencies(name: str, values: Any, sample_rate: float) -> np.ndarray:
    """A non-empty 1-D list of frequencies, each strictly between 0 and Nyquist."""
    if _is_number(values):
        values = [values]
    if isinstance(values, str) or not isinstance(values, Sequence | np.ndarray):
        raise DspError(f"{name} must be a sequence of frequencies in Hz, got {values!r}")
    array = np.asarray(values)
    if array.ndim != 1 or array.size == 0:
        raise DspError(f"{name} must be a non-empty 1-D sequence of frequencies, got {values!r}")
    return np.array([frequency(name, v, sample_rate) for v in array.tolist()], dtype=np.float64)


def samples(name: str, value: Any, *, allow_empty: bool = False) -> np.ndarray:
    """A 1-D (mono) contiguous int16, float32 or float64 array without NaN or infinity."""
    if not isinstance(value, np.ndarray):
        raise DspError(f"{name} must be a numpy array, got {type(value).__name__}")
    if value.dtype.newbyteorder("=") not in SAMPLE_DTYPES:
        raise DspError(f"{name} must be int16, float32 or float64 samples, got dtype {value.dtype}")
    if value.ndim != 1:
        raise DspError(f"{name} must be 1-D (mono), got shape {value.shape}")
    if value.size == 0 and not allow_empty:
        raise DspError(f"{name} is empty; expected at least one sample")
    if not value.dtype.isnative:
        value = value.astype(value.dtype.newbyteorder("="))
    value = np.ascontiguousarray(value)
    if value.dtype.kind == "f":
        bad = ~np.isfinite(value)
        if bad.any():
            index = int(np.argmax(bad))
            raise DspError(f"{name} must be finite, got {value[index]} at index {index}")
    return value


def full_scale(dtype: np.dtype) -> float:
    """The magnitude of a full-scale sample: 32768 for int16, 1.0 for floats."""
    return 32768.0 if dtype.kind == "i" else 1.0
