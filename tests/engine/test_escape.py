"""No silent escape from the journal (issue 15).

A ``@task``/``@external`` called directly inside a running process raises
``TaskCalledDirectly`` (the effect does not run); inside a task's body, in a
pool, or outside any process it is a plain function. A ``ctx.task(...)`` made
and never awaited fails the run when the process returns, naming its line.
"""

from __future__ import annotations

import gc
import inspect
import warnings
from typing import Any

import pytest

from replay_engine import Engine
from replay_engine.errors import ProcessError, TaskCalledDirectly, TaskNotAwaited
from tests.engine import escape_flows as ef
from tests.journal_views import tags

MakeEngine = Any


@pytest.fixture(autouse=True)
def _clean() -> None:
    ef.RAN.clear()


def _line_of(marker: str) -> int:
    lines, start = inspect.getsourcelines(ef)
    return next(i for i, text in enumerate(lines, start or 1) if marker in text)


def test_direct_call_in_the_process_is_refused_and_runs_nothing(
    make_engine: MakeEngine,
) -> None:
    assert issubclass(TaskCalledDirectly, ProcessError)
    engine = make_engine()
    run = engine.run(ef.direct, {}, run_id="d")
    assert run.status == "failed"
    assert run.error is not None
    assert run.error.type == "replay_engine.errors.TaskCalledDirectly"
    message = run.error.message
    assert "await ctx.task(step, {...})" in message, message
    assert f"escape_flows.py:{_line_of('DIRECT-CALL')}" in message, message
    assert ef.RAN["step"] == 0
    assert "requested" not in tags(engine, "d")


def test_direct_call_of_an_external_is_refused(make_engine: MakeEngine) -> None:
    run = make_engine().run(ef.direct_external, {}, run_id="x")
    assert run.status == "failed" and run.error is not None
    assert "TaskCalledDirectly" in run.error.type
    assert "ctx.task(approve" in run.error.message


def test_direct_call_in_a_parallel_branch_is_refused(make_engine: MakeEngine) -> None:
    run = make_engine().run(ef.direct_in_branch, {}, run_id="b")
    assert run.status == "failed" and run.error is not None
    assert "TaskCalledDirectly" in run.error.type
    assert ef.RAN["step"] == 2  # the two journaled calls, not the direct one


def test_tasks_use_other_tasks_as_helpers_in_every_executor(
    make_engine: MakeEngine,
) -> None:
    engine = make_engine()
    run = engine.run(ef.helpers_in_tasks, {}, run_id="h")
    assert run.status == "completed", run.error
    assert run.result == [11, 12, 13, 14, len("plain functions are not tasks")]
    # One journaled effect each; the helper ran inside it, unjournaled.
    assert run.stats.dispatched == 4
    assert ef.RAN["step"] == 3  # inline, thread, async (the pool's is elsewhere)


def test_outside_a_process_a_task_is_a_plain_function() -> None:
    assert ef.step(n=2) == 20
    assert ef.step_thread(n=1) == 12
    assert ef.RAN["step"] == 2


def test_a_dropped_call_fails_the_run_naming_its_line(make_engine: MakeEngine) -> None:
    engine = make_engine()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = engine.run(ef.dropped, {}, run_id="u")
        gc.collect()
    assert run.status == "failed" and run.error is not None
    assert run.error.type == "replay_engine.errors.TaskNotAwaited"
    message = run.error.message
    assert f"escape_flows.py:{_line_of('# DROPPED')}" in message, message
    assert "(key 1)" in message and "await ctx.task(" in message, message
    assert ef.RAN["step"] == 1  # the awaited one only
    assert tags(engine, "u").count("requested") == 1
    # Reported once, by the engine: Python's own "never awaited" is not added.
    assert not [w for w in caught if "never awaited" in str(w.message)], caught


def test_a_dropped_call_in_a_branch_is_reported_with_its_key(
    make_engine: MakeEngine,
) -> None:
    run = make_engine().run(ef.dropped_in_branch, {}, run_id="ub")
    assert run.status == "failed" and run.error is not None
    message = run.error.message
    line = _line_of("DROPPED-BRANCH")
    assert message.count(f"escape_flows.py:{line}") == 2, message
    assert "(key 0.0.0)" in message and "(key 0.1.0)" in message, message


def test_awaiting_later_is_not_dropping(make_engine: MakeEngine) -> None:
    run = make_engine().run(ef.awaited_later, {}, run_id="l")
    assert run.status == "completed" and run.result == [20, 10]


def test_the_error_types_are_public() -> None:
    err = TaskNotAwaited("m", run_id="r", calls=(("1", "t", "f.py:3"),))
    assert err.calls[0][2] == "f.py:3" and isinstance(err, ProcessError)
    assert isinstance(TaskCalledDirectly("m"), RuntimeError)


def test_resume_after_fixing_a_dropped_call(make_engine: MakeEngine) -> None:
    """The failed run resumes with the fixed code; the dropped call runs then."""
    engine: Engine = make_engine()
    assert engine.run(ef.dropped, {}, run_id="fix").status == "failed"
    fixed = engine.resume("fix", process=ef.awaited_later)
    assert fixed.status == "completed" and fixed.result == [20, 10]
    assert fixed.stats.replayed == 1 and fixed.stats.dispatched == 1
