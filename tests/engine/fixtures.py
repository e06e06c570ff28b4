"""Fixtures shared by tests/engine and tests/crash (imported by both conftests)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from replay_engine import Engine

from .flows import DELAYS, GATES, GAUGE, SIDE_ENV


@pytest.fixture
def side(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The side-channel file every task of this test reports its dispatches to."""
    path = tmp_path / "side.jsonl"
    monkeypatch.setenv(SIDE_ENV, str(path))
    return path


@pytest.fixture
def make_engine(tmp_path: Path) -> Iterator[Callable[..., Engine]]:
    """``make_engine(name="journal", **options)``: a real engine in tmp_path."""
    engines: list[Engine] = []

    def make(name: str = "journal", **options: Any) -> Engine:
        engine = Engine(str(tmp_path / name), **options)
        engines.append(engine)
        return engine

    yield make
    for engine in reversed(engines):
        engine.close()


@pytest.fixture(autouse=True)
def reset_flows() -> Iterator[None]:
    """Module state of flows.py starts clean; gates never stay shut after a test."""
    GAUGE.reset()
    DELAYS["seed"] = None
    GATES.clear()
    yield
    for g in GATES.values():
        g.release.set()
    DELAYS["seed"] = None
