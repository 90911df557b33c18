"""Everything a person runs: `nox -s run`, `nox -s tests`, `nox -s lint`, `nox -s bench`."""

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True


@nox.session
def run(session: nox.Session) -> None:
    """Run the two agents against the configured server (the embedded one by default), then verify."""
    session.install("-e", ".")
    session.run("python", "-m", "pipeline", "--config", "config.json", *session.posargs)
    session.run("python", "-m", "verify", "recordings/")


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
