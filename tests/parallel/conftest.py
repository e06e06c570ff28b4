"""Fixtures for the race, settle and failed-wait tests.

* ``journal``: the test's journal directory (created by the first run);
* ``engine``: an :class:`Engine` on it (closed at teardown);
* ``side``: the side-channel file in-process tasks report executions to.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from replay_engine import Engine

from .par_flows import SIDE_ENV


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / "journal"


@pytest.fixture
def engine(journal: Path) -> Iterator[Engine]:
    eng = Engine(str(journal))
    yield eng
    eng.close()


@pytest.fixture
def side(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "side.jsonl"
    monkeypatch.setenv(SIDE_ENV, str(path))
    return path
