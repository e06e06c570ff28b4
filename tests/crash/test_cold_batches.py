"""SIGKILL a real process, then resume it folding in tiny batches.

A cold resume longer than ``FOLD_BATCH_EVENTS`` folds in several read
transactions, LMDB's map released between them (``_store/load_batches.py``,
issue 17's memory). Here the batch is 2 events, so every resume of
``test_sigkill``'s mixed process crosses many batch boundaries, at every
kind of event, and must still be exact: ``check_resume`` checks the result,
the journal's content, the crashed prefix, write-ahead and what ran again.
"""

from __future__ import annotations

import concurrent.futures as cf
from pathlib import Path
from typing import Any

import pytest

from replay_engine._store import env as _env, load_batches
from tests.crash.test_sigkill import (
    MIXED_INPUTS,
    MakeEngine,
    check_resume,
    crash_at,
    reference_run,
)
from tests.engine import flows


def test_sigkill_then_a_resume_folding_two_events_at_a_time(
    make_engine: MakeEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = reference_run(
        make_engine, flows.mixed_process, MIXED_INPUTS, durability="fsync"
    )
    points = range(3, reference.events + 1, 4)
    with cf.ThreadPoolExecutor(2) as pool:
        crashes = list(
            pool.map(lambda k: crash_at(tmp_path, k, durability="fsync"), points)
        )
    monkeypatch.setattr(load_batches, "FOLD_BATCH_EVENTS", 2)
    released: list[bool] = []
    real = _env.release_map

    def counting(handle: Any) -> bool:
        released.append(real(handle))
        return released[-1]

    monkeypatch.setattr(_env, "release_map", counting)
    for k, crash in zip(points, crashes, strict=True):
        released.clear()
        try:
            check_resume(crash, reference, monkeypatch, durability="fsync")
        except AssertionError as exc:
            raise AssertionError(f"crash point k={k}: {exc}") from exc
        # The resume's load did fold in batches (k events, 2 at a time).
        assert len(released) >= (k - 1) // 2 and all(released), (k, released)
