"""The exceptions of the capture stage.

Every error the capture stage raises on purpose derives from `PipelineError`, whose message is
one sentence a user can act on (what was found, what was expected). The CLI maps each kind to an
exit code:

- `ConfigError` (exit 2): the config file, an environment variable or an option is wrong.
- `ConnectError` (exit 3): the server could not be reached, refused the credentials, or was lost.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Root of every error of the capture stage; `str(error)` is one sentence for the user."""


class ConfigError(PipelineError):
    """The configuration (file, environment or command line) is missing, malformed or invalid."""


class ConnectError(PipelineError):
    """The LiveKit server could not be reached, refused the credentials, or went away."""
