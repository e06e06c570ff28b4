"""Journals the security tests start from."""

from __future__ import annotations

from pathlib import Path

from tests.adversarial import cli

HERE = Path(__file__).parent


def real_run(journal: Path, run_id: str = "r1", *, cwd: Path) -> None:
    """A real run of ``sec_flows:process`` left waiting (exit 3)."""
    done = cli(
        journal, "run", "sec_flows:process", "--run-id", run_id, paths=[HERE], cwd=cwd
    )
    assert done.returncode == 3, done.describe()
