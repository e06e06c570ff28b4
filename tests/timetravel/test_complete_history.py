"""Replaying a complete history: anything added, removed or changed diverges.

A run whose journal ends with ``run_completed`` or ``run_failed`` is a
complete history: the process ended there. Replaying it (``Engine.replay``
with no ``until``, or ``until`` = every event) must make exactly the recorded
calls and end the same way, or raise ``NonDeterminismError`` as ``resume``
does. A frontier there would mean "nothing wrong" where something is.
``run_cancelled``/``run_timed_out`` end a run from outside, wherever its
process was: their journal is a prefix that will not grow, so a call past it
is a frontier, but a changed call, or recorded calls a finished process never
made, still diverge.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import journal_format as jf
from replay_engine import Engine, NonDeterminismError

from .conftest import FLOWS_DIR, key_of

HIST = FLOWS_DIR / "hist_flows.py"


def _flows() -> Any:
    import hist_flows  # on sys.path through the flows_on_path fixture

    return hist_flows


@pytest.fixture
def side(tmp_path: Path) -> Path:
    return tmp_path / "side.txt"


@pytest.fixture
def completed(engine: Engine, side: Path) -> Iterator[Engine]:
    """``hist_flows:process`` run to completion as ``done``."""
    run = engine.run("hist_flows:process", {"side": str(side)}, run_id="done")
    assert run.status == "completed", run.error
    yield engine


def _seq_of(engine: Engine, run_id: str, tag: str) -> int:
    return next(s.seq for s in engine.events(run_id) if jf.event_tag(s.event) == tag)


def _request_seq(engine: Engine, run_id: str, key: str) -> int:
    return next(
        s.seq
        for s in engine.events(run_id)
        if isinstance(s.event, jf.EffectRequested) and key_of(s) == key
    )


def _lines(side: Path) -> list[str]:
    return side.read_text(encoding="utf-8").splitlines() if side.exists() else []


def _diverges(engine: Engine, run_id: str, fn: Any, side: Path) -> NonDeterminismError:
    before = _lines(side)
    with pytest.raises(NonDeterminismError) as info:
        engine.replay(run_id, process=fn)
    assert _lines(side) == before, "a replay dispatched something"
    exc = info.value
    assert exc.run_id == run_id
    text = str(exc)
    assert f"run {run_id!r} diverged from its journal" in text
    assert "recorded:" in text and "replayed:" in text and "call site:" in text
    return exc


def test_unchanged_code_replays_a_complete_history_cleanly(completed: Engine) -> None:
    snap = completed.replay("done", process=_flows().process)
    assert snap.process_status == "completed"
    assert snap.result == completed.result("done")
    assert snap.frontier == []


def test_an_extra_call_after_the_recorded_ones_diverges(
    completed: Engine, side: Path
) -> None:
    exc = _diverges(completed, "done", _flows().extra_call, side)
    assert exc.key == "3"
    assert exc.seq == _seq_of(completed, "done", "run_completed")
    assert "hist.add" in exc.replayed
    assert "run_completed" in exc.recorded
    assert f"{HIST}:" in str(exc)  # the call site is the extra call's line


def test_an_extra_ctx_value_after_the_recorded_calls_diverges(
    completed: Engine, side: Path
) -> None:
    exc = _diverges(completed, "done", _flows().extra_value, side)
    assert exc.key == "3"
    assert "ctx.now()" in exc.replayed


def test_a_skipped_recorded_call_diverges(completed: Engine, side: Path) -> None:
    exc = _diverges(completed, "done", _flows().skips_last, side)
    assert exc.key == "2.0.0"
    assert exc.seq == _request_seq(completed, "done", "2.0.0")
    assert "fewer calls" in str(exc)


def test_a_different_final_result_diverges(completed: Engine, side: Path) -> None:
    exc = _diverges(completed, "done", _flows().other_result, side)
    assert exc.seq == _seq_of(completed, "done", "run_completed")
    assert "'b': -1" in exc.replayed
    assert "'b': 13" in exc.recorded
    assert "different result" in str(exc)


def test_raising_where_the_journal_records_a_result_diverges(
    completed: Engine, side: Path
) -> None:
    exc = _diverges(completed, "done", _flows().raises_instead, side)
    assert exc.seq == _seq_of(completed, "done", "run_completed")
    assert "changed my mind" in exc.replayed


def test_until_the_last_event_is_the_complete_history_too(completed: Engine) -> None:
    events = completed.status("done").events
    with pytest.raises(NonDeterminismError):
        completed.replay("done", until=events, process=_flows().extra_call)


def test_until_before_the_end_keeps_the_frontier(completed: Engine) -> None:
    events = completed.status("done").events
    # Everything but run_completed: the journal does not say the process ended.
    snap = completed.replay("done", until=events - 1, process=_flows().extra_call)
    assert snap.process_status == "frontier"
    assert [f.key for f in snap.frontier] == ["3"]


def test_a_failed_history_replays_its_failure(engine: Engine, side: Path) -> None:
    flows = _flows()
    run = engine.run("hist_flows:failing", {"side": str(side)}, run_id="bad")
    assert run.status == "failed"
    snap = engine.replay("bad", process=flows.failing)
    assert snap.process_status == "failed"
    failed_at = _seq_of(engine, "bad", "run_failed")
    exc = _diverges(engine, "bad", flows.failing_other_reason, side)
    assert exc.seq == failed_at and "another reason" in exc.replayed
    exc = _diverges(engine, "bad", flows.failing_recovers, side)
    assert exc.seq == failed_at and "recovered" in exc.replayed


def test_a_cancelled_run_is_a_prefix_that_will_not_grow(
    engine: Engine, side: Path
) -> None:
    flows = _flows()
    run = engine.run("hist_flows:waits", {"side": str(side)}, run_id="gone")
    assert run.status == "waiting"
    assert engine.cancel("gone").status == "cancelled"
    snap = engine.replay("gone", process=flows.waits)
    assert snap.process_status in {"frontier", "failed"}
    exc = _diverges(engine, "gone", flows.waits_changed, side)
    assert exc.key == "0"


def test_the_replay_command_reports_the_divergence(
    completed: Engine, invoke: Any
) -> None:
    out = invoke("replay", "done", "--process", "hist_flows:extra_call", code=1)
    text = out.stdout + out.stderr
    assert "diverged from its journal at key 3" in text
    assert "extra call" in text
    invoke("replay", "done", "--process", "hist_flows:process", code=0)
    until = str(completed.status("done").events - 1)
    invoke("replay", "done", "--until", until, "--process", "hist_flows:extra_call")
