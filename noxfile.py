"""Everything a person runs: `nox -s run`, `nox -s tests`, `nox -s lint`, `nox -s bench`,
`nox -s compat`, `nox -s agent-env`."""

import os
import shutil
import sys
from pathlib import Path

import nox
from nox.command import CommandFailed

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


# LiveKit agents run in a venv of their own, as users' agents do: livekit-agents pins the
# `livekit` SDK (1.8.9: livekit==1.1.21) below what echoproof needs (>=1.2).
AGENT_ENV = Path(".nox") / "agent-env"
AGENT_REQUIREMENTS = (
    "livekit-agents==1.8.9",  # examples/reply_agent.py needs nothing else
    # examples/voice_agent.py: Silero VAD and PocketSphinx, each shipping its model
    "livekit-plugins-silero==1.8.9",
    "pocketsphinx==5.1.1",
)
# examples/voice_agent.py speaks with eSpeak NG, and the tests make the Customer's turns with it
VOICE_PACKAGES = ("espeak-ng",)


def _agent_python(session: nox.Session) -> str:
    """The agents' venv (created, or reused while its requirements are unchanged): its python."""
    python = AGENT_ENV / "bin" / "python"
    stamp = AGENT_ENV / "echoproof-requirements.txt"
    wanted = "\n".join(AGENT_REQUIREMENTS) + "\n"
    if not (python.exists() and stamp.exists() and stamp.read_text() == wanted):
        session.run(sys.executable, "-m", "venv", "--clear", str(AGENT_ENV), external=True)
        session.run(str(python), "-m", "pip", "install", "-q", *AGENT_REQUIREMENTS, external=True)
        stamp.write_text(wanted)
    return str(python.absolute())


@nox.session(name="agent-env", venv_backend="none")
def agent_env(session: nox.Session) -> None:
    """The venv LiveKit agents run in (.nox/agent-env: livekit-agents), for examples/."""
    session.log(f"agents' python: {_agent_python(session)}")


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite, with real servers, real SDK clients and real agent workers."""
    # The Ray extra too: the tests of --ray run on Ray's own multi-node test cluster, not skip.
    session.install("-e", ".[test,ray]")
    # The agent tests must run here, not skip: they fail if the agents' venv does not work.
    env = {"ECHOPROOF_AGENT_PYTHON": _agent_python(session), "ECHOPROOF_AGENT_REQUIRED": "1"}
    if shutil.which("espeak-ng") is None and not _apt_install(session, *VOICE_PACKAGES):
        session.warn("espeak-ng is missing and cannot be installed: the voice agent's tests fail")
    session.run("pytest", *session.posargs, env=env)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff, mypy and the import contracts (import-linter)."""
    session.install("-e", ".[lint,ray]")  # mypy reads Ray's types
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")
    session.run("lint-imports", "--no-cache")


@nox.session
def bench(session: nox.Session) -> None:
    """Every benchmark; writes benchmarks/results.json and prints a table."""
    session.install("-e", ".[bench,ray]")
    session.run("python", "-m", "benchmarks", *session.posargs)


def _apt_install(session: nox.Session, *packages: str) -> bool:
    """Install Debian packages when apt-get is usable here (root); whether it worked."""
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        return False
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    try:
        session.run("apt-get", "install", "-y", *packages, external=True, env=env)
    except CommandFailed:
        try:  # a fresh machine has no package lists yet
            session.run("apt-get", "update", external=True, env=env)
            session.run("apt-get", "install", "-y", *packages, external=True, env=env)
        except CommandFailed:
            return False
    return True


@nox.session
def compat(session: nox.Session) -> None:
    """The JS SDK (livekit-client) in headless Chromium against the embedded server."""
    chromium = os.environ.get("ECHOPROOF_CHROMIUM", "/usr/bin/chromium")
    if not os.access(chromium, os.X_OK) and not (
        _apt_install(session, "chromium") and os.access(chromium, os.X_OK)
    ):
        session.skip(
            f"Skipping the browser test: no Chromium at {chromium}, and Debian's chromium package"
            " could not provide one here (installing it needs apt-get as root); set"
            " ECHOPROOF_CHROMIUM to a Chromium binary to use another one."
        )
    if (shutil.which("node") is None or shutil.which("npm") is None) and not (
        _apt_install(session, "nodejs", "npm") and shutil.which("node") and shutil.which("npm")
    ):
        session.skip("Skipping the browser test: Node.js and npm are not installed and cannot be.")
    session.install("-e", ".[test]")
    try:
        session.run("npm", "ci", "--prefix", "compat", "--no-audit", "--no-fund", external=True)
    except CommandFailed:
        session.skip(
            "Skipping the browser test: `npm ci` in compat/ failed (is the npm registry"
            " reachable?), so livekit-client and playwright-core are missing."
        )
    # Everything is in place now: the test must run, not skip.
    env = {"ECHOPROOF_CHROMIUM": chromium, "ECHOPROOF_COMPAT_REQUIRED": "1"}
    session.run("pytest", "tests/compat", *session.posargs, env=env)
