"""The cyclic collector runs less often while a run executes, and is restored after."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from replay_engine import Engine


async def thresholds(inputs: Any, ctx: Any) -> list[int]:
    return list(gc.get_threshold())


_started, _release = threading.Event(), threading.Event()


async def thresholds_after_a_pause(inputs: Any, ctx: Any) -> list[int]:
    _started.set()
    _release.wait(10)  # hold this execution open while another runs
    return list(gc.get_threshold())


@pytest.fixture
def defaults() -> Iterator[tuple[int, int, int]]:
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)  # CPython's defaults, whatever ran before
    yield gc.get_threshold()
    gc.set_threshold(*saved)


def test_thresholds_are_raised_during_a_run_and_restored_after(
    tmp_path: Path, defaults: tuple[int, int, int]
) -> None:
    with Engine(str(tmp_path / "j")) as engine:
        during = engine.run(thresholds, None).result
    assert during[0] >= 50_000 and during[1] >= 50 and during[2] == defaults[2]
    assert gc.get_threshold() == defaults


def test_overlapping_runs_restore_the_thresholds_once_both_end(
    tmp_path: Path, defaults: tuple[int, int, int]
) -> None:
    _started.clear()
    _release.clear()
    results: dict[str, Any] = {}
    with Engine(str(tmp_path / "j")) as engine:

        def slow() -> None:
            results["slow"] = engine.run(thresholds_after_a_pause, None, run_id="slow")

        thread = threading.Thread(target=slow)
        thread.start()
        assert _started.wait(10)
        results["quick"] = engine.run(thresholds, None, run_id="quick")
        # The quick run ended; the slow one still executes: still relaxed.
        assert gc.get_threshold()[0] >= 50_000
        _release.set()
        thread.join(10)
    assert results["quick"].result[0] >= 50_000
    assert gc.get_threshold() == defaults
