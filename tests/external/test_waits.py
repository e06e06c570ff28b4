"""Breakpoints, signals, timeouts and durable timers, driven by ``iterate``."""

from __future__ import annotations

import datetime as _dt
import time
from pathlib import Path

import pytest

import journal_format as jf
from replay_engine import Engine, PostRejected
from tests.journal_views import snapshot, tags

from . import ext_flows as f
from .ext_flows import read_side


def sleep_until(when: _dt.datetime | None, margin: float = 0.05) -> None:
    assert when is not None
    delay = (when - _dt.datetime.now(_dt.UTC)).total_seconds() + margin
    if delay > 0:
        time.sleep(delay)


# -- breakpoints ---------------------------------------------------------------


@pytest.mark.parametrize("approved", [True, False])
def test_breakpoint_answer_is_a_result(engine: Engine, approved: bool) -> None:
    run = engine.run(f.approval, {}, run_id="b")
    assert run.status == "waiting" and run.pending == ["0"]
    [bp] = engine.pending("b")
    assert bp.kind == "breakpoint" and bp.task == "breakpoint"
    assert bp.args == {"title": "deploy?", "payload": {"env": "prod"}}
    assert bp.deadline is None
    engine.post(
        "b", "0", result={"approved": approved, "response": "ok by me"}, by="alice"
    )
    run = engine.iterate("b")
    assert run.status == "completed"  # a rejection is an answer, not a failure
    assert run.result == {"deployed": approved, "response": "ok by me"}
    assert engine.replay("b").result == run.result
    assert engine.resume("b").result == run.result


def test_breakpoint_timeout_is_a_recorded_expiry(engine: Engine) -> None:
    run = engine.run(f.approval, {"timeout": 0.4}, run_id="b")
    assert run.status == "waiting" and run.next_due is not None
    [bp] = engine.pending("b")
    assert bp.deadline == run.next_due
    before = snapshot(engine, "b")
    early = engine.iterate("b")  # not yet due: still waiting, nothing written
    assert early.status == "waiting" and early.next_due == run.next_due
    assert snapshot(engine, "b").digests == before.digests
    sleep_until(run.next_due)
    run = engine.iterate("b")
    assert run.status == "completed"
    assert run.result == {"expired": True, "error_type": "Expired"}
    [failed] = [
        s.event for s in engine.events("b") if isinstance(s.event, jf.EffectFailed)
    ]
    assert failed.error.type == "Expired" and jf.key_bytes_to_text(failed.key) == "0"
    # Replay agrees: the expiry is read back, not re-decided.
    assert engine.replay("b").result == run.result
    with pytest.raises(PostRejected) as info:
        engine.post("b", "0", result={"approved": True})
    assert info.value.reason == "run_finished"


def test_a_post_after_the_deadline_but_before_iterate_wins(engine: Engine) -> None:
    run = engine.run(f.approval, {"timeout": 0.2}, run_id="b")
    sleep_until(run.next_due)
    engine.post("b", "0", result={"approved": True, "response": None})
    run = engine.iterate("b")
    assert run.result == {"deployed": True, "response": None}
    assert "failed" not in tags(engine, "b")


def test_external_task_timeout_is_catchable(engine: Engine) -> None:
    run = engine.run(f.expiring, None, run_id="x")
    assert run.status == "waiting"
    sleep_until(run.next_due)
    run = engine.iterate("x")
    assert run.status == "completed" and run.result == "expired"
    assert engine.replay("x").result == "expired"


# -- signals -------------------------------------------------------------------


def test_signals_after_the_wait_are_consumed_in_order(
    engine: Engine, side: Path
) -> None:
    run = engine.run(f.signals, {}, run_id="s")
    assert run.status == "waiting" and run.pending == ["1"]
    assert engine.pending("s") == []  # a signal wait is not a postable effect
    engine.post_event("s", "other", "ignored")
    engine.post_event("s", "go", {"n": 1})
    run = engine.iterate("s")
    assert run.status == "waiting" and run.pending == ["2"]
    engine.post_event("s", "go", {"n": 2})
    engine.post_event("s", "go", {"n": 3})  # one too many: stays unconsumed
    run = engine.iterate("s")
    assert run.status == "completed"
    assert run.result == [{"n": 1}, {"n": 2}]
    assert engine.replay("s").result == run.result
    # The in-process task ran once, whatever the number of iterations.
    assert [x["what"] for x in read_side(side)] == ["prepare"]
    pairs = [
        (jf.key_bytes_to_text(s.event.key), s.event.signal_seq)
        for s in engine.events("s")
        if isinstance(s.event, jf.EffectCompleted) and s.event.signal_seq is not None
    ]
    assert [k for k, _ in pairs] == ["1", "2"]


def test_signal_posted_before_the_wait_is_reached(engine: Engine) -> None:
    run = engine.run(f.gated_signal, None, run_id="g")
    assert run.pending == ["0"]
    engine.post_event("g", "go", "early")  # the wait at key 1 does not exist yet
    engine.post("g", "0", result="open")
    run = engine.iterate("g")
    assert run.status == "completed"
    assert run.result == {"gate": "open", "go": "early"}


def test_signal_wait_timeout(engine: Engine) -> None:
    run = engine.run(f.signal_timeout, {"timeout": 0.3}, run_id="t")
    assert run.status == "waiting" and run.next_due is not None
    assert engine.iterate("t").status == "waiting"
    sleep_until(run.next_due)
    run = engine.iterate("t")
    assert run.result == {"expired": "Expired"}
    # A late signal is refused: the run is completed.
    with pytest.raises(PostRejected):
        engine.post_event("t", "never", 1)


# -- durable timers ------------------------------------------------------------


def test_timer_parks_in_iterate_and_fires_when_due(engine: Engine, side: Path) -> None:
    run = engine.run(f.timers, {"seconds": 0.6}, run_id="t")
    assert run.status == "waiting" and run.pending == ["1"]
    engine.post("t", "1", result="go")
    started = time.time()
    run = engine.iterate("t")
    assert time.time() - started < 0.6  # iterate does not sleep the timer out
    assert run.status == "waiting" and run.pending == []
    assert run.next_due is not None
    assert run.next_due > _dt.datetime.now(_dt.UTC)
    assert engine.status("t").status == "waiting"
    due = run.next_due
    before = snapshot(engine, "t")
    again = engine.iterate("t")  # still not due: nothing changes
    assert again.status == "waiting" and again.next_due == due
    assert snapshot(engine, "t").digests == before.digests
    sleep_until(due)
    run = engine.iterate("t")
    assert run.status == "completed" and run.result == "after"
    timer = [t for t in tags(engine, "t") if t.startswith("timer")]
    assert timer == ["timer_started", "timer_fired"]
    assert [x["what"] for x in read_side(side)] == ["prepare", "prepare"]
