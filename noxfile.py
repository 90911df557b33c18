"""Everything a person runs: `nox -s run`, `nox -s tests`, `nox -s lint`, `nox -s bench`."""

from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True


@nox.session
def run(session: nox.Session) -> None:
    """Two agents talk on the configured server (embedded by default); re-check what they left."""
    session.install("-e", ".")
    out = Path("recordings")
    before = set(out.iterdir()) if out.is_dir() else set()
    session.run(
        "python", "-m", "pipeline", "--config", "config.json", "--out", str(out), *session.posargs
    )
    # Re-check only this run's folders from the archived files alone: an older, interrupted
    # run in recordings/ must not fail today's.
    new = sorted(str(p) for p in set(out.iterdir()) - before if p.is_dir())
    session.run("python", "-m", "verify", *(new or [str(out)]))


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite, with real servers and real SDK clients."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff and mypy."""
    session.install("-e", ".[lint]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """Every benchmark; writes benchmarks/results.json and prints a table."""
    session.install("-e", ".[bench]")
    session.run("python", "-m", "benchmarks", *session.posargs)
