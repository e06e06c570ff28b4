"""``parallel.all``/``map`` with ``settled=True`` or ``fail_fast=True`` (issue 15)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import journal_format as jf
from replay_engine import Engine, PostRejected

from .par_flows import (
    fail_fast_all,
    fail_fast_map,
    read_side,
    settled_all,
    settled_map,
)


def _events(engine: Engine, run_id: str, kind: type[Any]) -> list[Any]:
    return [e.event for e in engine.events(run_id) if isinstance(e.event, kind)]


def _replayed(engine: Engine, run_id: str) -> Any:
    """Resume a fork of the whole history: the process re-executed on the journal."""
    engine.fork(run_id, at=len(engine.events(run_id)) - 1, new_run_id=run_id + "-f")
    run = engine.resume(run_id + "-f")
    assert run.stats.dispatched == 0
    return run.result


def test_settled_returns_failures_in_input_order(engine: Engine, side: Path) -> None:
    run = engine.run(settled_all, None, run_id="s")
    expected = [0, {"error": "builtins.ValueError", "key": "0.1.0"}, 20]
    assert run.status == "completed" and run.result == expected
    assert _replayed(engine, "s") == expected


def test_settled_map(engine: Engine, side: Path) -> None:
    run = engine.run(settled_map, None, run_id="s")
    expected = [0, "builtins.ValueError", 20, "builtins.ValueError"]
    assert run.result == expected
    assert _replayed(engine, "s") == expected


def test_fail_fast_does_not_wait_for_a_slow_sibling(engine: Engine, side: Path) -> None:
    run = engine.run(fail_fast_all, None, run_id="f")
    # Without fail_fast the run would wait for the 60 s task and the agent.
    assert run.status == "completed" and run.result == {"failed": "0.2.0"}
    lines = read_side(side)
    assert [x["what"] for x in lines if x["i"] == 0] == ["start", "cancelled"]
    abandoned = {
        jf.key_bytes_to_text(e.key) for e in _events(engine, "f", jf.EffectAbandoned)
    }
    assert abandoned == {"0.0.0", "0.1.0"}
    with pytest.raises(PostRejected):
        engine.post("f", "0.1.0", result=1)
    assert _replayed(engine, "f") == {"failed": "0.2.0"}


def test_fail_fast_map_starts_nothing_after_the_failure(
    engine: Engine, side: Path
) -> None:
    run = engine.run(fail_fast_map, None, run_id="m")
    assert run.result == {"failed": "0.1.0"}
    started = sorted(x["i"] for x in read_side(side) if x["what"] == "start")
    assert started == [0, 1]
    assert _replayed(engine, "m") == {"failed": "0.1.0"}


def test_settled_and_fail_fast_together_are_refused(engine: Engine, side: Path) -> None:
    from .par_flows import fail_fast_three

    run = engine.run(fail_fast_three, {"settled": True, "fail_fast": True}, run_id="b")
    assert run.status == "failed"
    assert "ask for one of them" in str(run.error)


def test_settled_raises_what_is_not_a_task_failure(engine: Engine, side: Path) -> None:
    from .par_flows import settled_with_a_bug

    run = engine.run(settled_with_a_bug, None, run_id="b")
    assert run.result == {"raised": "'bug in the process'"}


def test_a_waiting_fail_fast_group_abandons_nothing(engine: Engine) -> None:
    """Stopping a run as waiting cancels its waits: that is not a branch failure."""
    from .par_flows import fail_fast_agents

    assert engine.run(fail_fast_agents, None, run_id="w").status == "waiting"
    assert _events(engine, "w", jf.EffectAbandoned) == []
    assert [p.key for p in engine.pending("w") if not p.abandoned] == ["0.0.0", "0.1.0"]
    engine.post("w", "0.1.0", error="agent gave up")
    assert engine.resume("w").result == {"failed": "0.1.0"}
    abandoned = [
        jf.key_bytes_to_text(e.key) for e in _events(engine, "w", jf.EffectAbandoned)
    ]
    assert abandoned == ["0.0.0"]
