"""``Engine.waiting``: what a run waits for, as typed values, without executing."""

from __future__ import annotations

import datetime as _dt

import pytest

from replay_engine import Engine, PendingEffect, RunNotFoundError, SignalWait, Waiting

from . import ext_flows as f


def test_externals_and_breakpoints_of_a_waiting_run(engine: Engine) -> None:
    run = engine.run(f.mixed_kinds, None, run_id="m")
    waiting = engine.waiting("m")
    assert isinstance(waiting, Waiting)
    assert (waiting.run_id, waiting.status) == ("m", "waiting")
    assert (
        [e.key for e in waiting.externals]
        == run.pending
        == [
            "0.0.0",
            "0.1.0",
            "0.2.0",
        ]
    )
    assert all(isinstance(e, PendingEffect) for e in waiting.externals)
    assert [e.kind for e in waiting.externals] == ["agent", "review", "breakpoint"]
    [bp] = waiting.breakpoints
    assert bp.key == "0.2.0" and bp.args == {"title": "merge?", "payload": {"pr": 7}}
    assert waiting.signals == () and waiting.next_due is None
    assert waiting.keys == ("0.0.0", "0.1.0", "0.2.0")


def test_posts_after_the_wait_settle_its_keys(engine: Engine) -> None:
    engine.run(f.fan, {"n": 3}, run_id="a")
    engine.post("a", "0.1.0", result=1)
    assert [e.key for e in engine.waiting("a").externals] == ["0.0.0", "0.2.0"]


def test_signal_waits_name_the_event_to_post(engine: Engine) -> None:
    run = engine.run(f.signals, {"timeout": 3600}, run_id="s")
    assert run.status == "waiting"
    waiting = engine.waiting("s")
    assert waiting.externals == ()
    [wait] = waiting.signals
    assert isinstance(wait, SignalWait)
    assert (wait.key, wait.name) == ("1", "go")
    assert wait.deadline is not None
    # The deadline is taken from ctx.now(); requested_at is the append time.
    span = wait.deadline - wait.requested_at
    assert abs(span - _dt.timedelta(hours=1)) < _dt.timedelta(seconds=5)
    assert waiting.next_due == wait.deadline
    assert wait.to_dict() == {
        "key": "1",
        "name": "go",
        "requested_at": wait.requested_at.isoformat(),
        "deadline": wait.deadline.isoformat(),
        "seq": wait.seq,
    }
    assert engine.events("s", wait.seq, wait.seq + 1)[0].event.task == "go"


def test_a_parked_timer_sets_next_due(engine: Engine) -> None:
    engine.run(f.timers, {"seconds": 3600}, run_id="t")
    engine.post("t", "1", result="gate")
    run = engine.iterate("t")
    waiting = engine.waiting("t")
    assert run.status == "waiting" and run.next_due is not None
    assert waiting.externals == () and waiting.signals == ()
    assert waiting.next_due == run.next_due


def test_a_failed_run_leaves_out_what_its_failure_abandoned(engine: Engine) -> None:
    engine.run(f.fail_fast, {"n": 3}, run_id="x")
    waiting = engine.waiting("x")
    assert waiting.status == "failed"
    assert waiting.externals == ()
    assert [e.key for e in engine.pending("x") if e.abandoned] == ["0.1.0", "0.2.0"]


def test_a_completed_run_waits_for_nothing(engine: Engine) -> None:
    engine.run(f.one_external, None, run_id="c")
    engine.post("c", "1", result="done")
    assert engine.iterate("c").status == "completed"
    assert engine.waiting("c") == Waiting(run_id="c", status="completed")


def test_an_unknown_run_is_refused(engine: Engine) -> None:
    engine.run(f.one_external, None, run_id="known")
    with pytest.raises(RunNotFoundError):
        engine.waiting("knwon")
