"""Fixtures of the verify tests: signing keys, synthesised runs (known truth), signed copies."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

import verify
from benchmarks import _synth as synth
from tests.verify.real_runs import DURATION_S, record


@pytest.fixture(autouse=True)
def _no_home_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Never touch the real ~/.config keys: the default signing key and trusted-keys folder
    point into the test's tmp dir."""
    monkeypatch.setenv("ECHOPROOF_SIGNING_KEY", str(tmp_path / "default-key" / "signing-key.pem"))
    monkeypatch.setenv("ECHOPROOF_TRUSTED_KEYS", str(tmp_path / "trusted"))


@pytest.fixture(scope="session")
def session_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One signing key for the session's signed runs."""
    return tmp_path_factory.mktemp("keys") / "signing-key.pem"


@pytest.fixture(scope="session")
def signed_template(tmp_path_factory: pytest.TempPathFactory, session_key: Path) -> Path:
    """A synthesised, passing run with its signed report (copy it before changing it)."""
    run = synth.make_run(tmp_path_factory.mktemp("template"))
    verify.write_report(run, key_path=session_key)
    return run


@pytest.fixture
def signed_run(signed_template: Path, tmp_path: Path) -> Path:
    """A private copy of the signed synthesised run."""
    return Path(shutil.copytree(signed_template, tmp_path / "runs" / signed_template.name))


@pytest.fixture
def make_run(tmp_path: Path) -> Callable[..., Path]:
    """Synthesise a run folder from a :class:`synth.Spec`."""

    def make(spec: synth.Spec | None = None, name: str = "20261123T221800Z-1a2b3c4d") -> Path:
        return synth.make_run(tmp_path / "runs", spec, name)

    return make


@pytest.fixture(scope="session")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real run folder (unsigned), recorded once per session."""
    return record(tmp_path_factory.mktemp("real"), DURATION_S, {}, ())
