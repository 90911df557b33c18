"""Without Ray installed `--ray` says, in one sentence, which extra to install (exit 2); only
`pipeline.cluster` imports ray, so every other run works without it."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import scaled
from tests.pipeline.conftest import REPO, free_port, run_cli, write_config


async def test_ray_missing_says_which_extra(tmp_path: Path) -> None:
    """An import of ray that fails: one line naming the extra, exit 2, nothing started."""
    fake = tmp_path / "site" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('ray is not installed (simulated)')\n")
    config = write_config(
        tmp_path / "config.json", f"ws://127.0.0.1:{free_port()}", "devkey", "secret"
    )
    done = await run_cli(
        "--config", str(config), "--pairs", "2", "--out", str(tmp_path / "out"),
        "--ray", "local", limit_s=scaled(60),
        env={"PYTHONPATH": f"{fake.parent}:{REPO}"},
    )  # fmt: skip
    assert done.code == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: --ray needs Ray, which is not installed here; install the extra with "
        "pip install 'echoproof[ray]'."
    ]


async def test_bad_address_is_one_sentence(tmp_path: Path) -> None:
    """`--ray` with neither auto, local nor ray://host:port: one line, exit 2."""
    config = write_config(
        tmp_path / "config.json", f"ws://127.0.0.1:{free_port()}", "devkey", "secret"
    )
    done = await run_cli("--config", str(config), "--ray", "head:6379", limit_s=scaled(60))
    assert done.code == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: --ray is 'head:6379'; expected auto, local or ray://host:port "
        "(e.g. ray://head:10001)."
    ]


def test_only_the_cluster_package_imports_ray() -> None:
    """No module outside `pipeline/cluster/` (and the tests) imports ray."""
    offenders = []
    for path in REPO.rglob("*.py"):
        rel = path.relative_to(REPO)
        if rel.parts[0] in (".venv", ".nox", "tests", "build") or rel.parts[:2] == (
            "pipeline",
            "cluster",
        ):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            if any(n == "ray" or n.startswith("ray.") for n in names):
                offenders.append(str(rel))
    assert not offenders
