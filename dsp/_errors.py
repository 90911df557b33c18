"""The one exception every ``dsp`` function raises on bad input.

``DspError`` (a ``ValueError``) is the root; its message is one sentence naming the argument, the
value found and what was expected, e.g. ``freq_hz must be below the Nyquist frequency 24000.0 Hz,
got 30000.0``.
"""

from __future__ import annotations


class DspError(ValueError):
    """Bad input to a ``dsp`` function; the message names the argument and its value."""
