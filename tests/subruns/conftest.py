"""Fixtures of the sub-run tests: a side channel the child flows report on,
and an engine on the test's journal."""

from __future__ import annotations

from pathlib import Path

import pytest

from replay_engine import Engine
from tests.subruns import child_flows as flows


@pytest.fixture
def side(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "side.txt"
    path.touch()
    monkeypatch.setenv(flows.SIDE_ENV, str(path))
    return path


@pytest.fixture
def engine(journal_dir: Path) -> Engine:
    return Engine(journal_dir, durability="process")
