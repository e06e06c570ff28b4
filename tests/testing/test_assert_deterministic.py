"""assert_deterministic: what it catches, what it passes, and what it says.

The done-when list of the issue: it catches a process using wall-clock time,
one using ``random`` directly, one iterating a set of strings and one whose
branch results depend on completion order, each with a message pointing at
the offending call; and it passes every example of the seed document.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from replay_engine.testing import (
    DeterminismFailure,
    DeterminismReport,
    FakeTasks,
    Schedule,
    assert_deterministic,
)

from . import hazards, seed_examples


def line_of(text: str, module: Any = hazards) -> int:
    """The line of ``module`` containing ``text`` (exactly one)."""
    lines = Path(module.__file__).read_text(encoding="utf-8").splitlines()
    (number,) = [n for n, line in enumerate(lines, start=1) if text in line]
    return number


def failure_of(process: Any, inputs: Any = None, **kwargs: Any) -> DeterminismFailure:
    with pytest.raises(DeterminismFailure) as caught:
        assert_deterministic(process, inputs, **kwargs)
    return caught.value


def reproduce(message: str) -> None:
    """Run the message's reproduction snippet; it must raise the failure again."""
    snippet = message.split("Reproduce:\n", 1)[1].split("\n\n", 1)[0]
    with pytest.raises(DeterminismFailure):
        exec(textwrap.dedent(snippet), {})


@pytest.mark.parametrize(
    ("process", "inputs"),
    seed_examples.EXAMPLES,
    ids=lambda p: getattr(p, "__name__", ""),
)
def test_the_seed_examples_are_deterministic(process: Any, inputs: Any) -> None:
    report = assert_deterministic(process, inputs, max_examples=8)
    assert report.schedules >= 1  # fewer when the space is small (pitfall 1)
    assert report.hash_seeds == (1, 2)
    assert report.notes == ()


# -- the four hazards of the issue ------------------------------------------------


def test_wall_clock_time_is_caught_at_the_call_using_it() -> None:
    failure = failure_of(hazards.wall_clock, max_examples=5)
    message = str(failure)
    call = line_of("# SITE 1")
    assert failure.key == "1"
    assert failure.site == f"{hazards.__file__}:{call}"
    assert "different args (they differ in 'started')" in message
    assert f"{hazards.__file__}:{line_of('time.time()')}:15: RE101" in message
    assert "ctx.now()" in message
    reproduce(message)


def test_direct_random_is_caught() -> None:
    failure = failure_of(hazards.direct_random, max_examples=5)
    message = str(failure)
    assert failure.key == "0"
    call = line_of("# SITE 2")
    assert failure.site == f"{hazards.__file__}:{call}"
    assert "they differ in 'n'" in message
    assert "RE102 random.randint()" in message and "ctx.random()" in message
    reproduce(message)


def test_iterating_a_set_of_strings_is_caught_under_another_hash_seed() -> None:
    failure = failure_of(hazards.set_iteration, max_examples=3)
    message = str(failure)
    # Which of the loop's six calls diverges first depends on this process's
    # own (random) hash seed: under two seeds the first names may coincide.
    assert failure.key in {str(i) for i in range(6)}
    assert failure.site == f"{hazards.__file__}:{line_of('# SITE 3')}"
    assert re.search(r"PYTHONHASHSEED=[12] : task '[\w.]+greet' args \{'name'", message)
    assert "RE107 iterating the set names" in message
    assert "sorted(the_set)" in message
    assert "hash_seed=" in message
    reproduce(message)


def test_completion_order_dependence_is_caught() -> None:
    failure = failure_of(hazards.completion_order, max_examples=10)
    message = str(failure)
    assert failure.key == "1"
    assert failure.site == f"{hazards.__file__}:{line_of('# SITE 4')}"
    assert "they differ in 'order'" in message
    assert "RE112 parallel branch branch() calls .append() on 'finished'" in message


def test_completion_order_is_found_by_a_minimal_schedule() -> None:
    # The inline task completes in index order unless a schedule holds one
    # back, so only the search can find this; it shrinks to one delay.
    failure = failure_of(hazards.order_dependent, max_examples=40, seed=1)
    schedule = failure.schedule
    assert len(schedule.delays) == 1
    assert schedule.failures == {} and schedule.crash_after == ()
    message = str(failure)
    assert f"under {schedule!r}" in message
    assert "hypothesis seed 1: rerun with pytest --replay-seed=1" in message
    assert "depends on which parallel branch finishes first" in message
    reproduce(message)


@pytest.mark.parametrize("process", hazards.FIXED, ids=lambda p: p.__name__)
def test_the_fixed_processes_pass(process: Any) -> None:
    assert_deterministic(process, None, max_examples=10)


# -- other differences -------------------------------------------------------------


def test_differing_log_lines_are_caught() -> None:
    failure = failure_of(hazards.random_log, max_examples=10)
    assert "different log lines" in str(failure)
    assert failure.key is None


def test_a_different_final_result_on_replay_is_caught() -> None:
    failure = failure_of(hazards.random_result, max_examples=5)
    assert "returned a different result" in str(failure)


def test_a_nondeterministic_task_is_blamed_on_the_task_and_can_be_faked() -> None:
    failure = failure_of(hazards.calls_a_lottery, max_examples=10)
    message = str(failure)
    assert "same task, same args) had a different outcome" in message
    assert "the task itself is nondeterministic" in message
    assert "FakeTasks({'tests.testing.hazards.lottery': ...})" in message
    fakes = FakeTasks({"tests.testing.hazards.lottery": 7})
    assert_deterministic(hazards.calls_a_lottery, None, fakes=fakes, max_examples=5)


# -- the report and the edges ------------------------------------------------------


def test_the_report_says_what_was_exercised() -> None:
    report = assert_deterministic(
        seed_examples.scenario1_quality_checks,
        {"feature": "x"},
        max_examples=15,
        seed=3,
    )
    assert isinstance(report, DeterminismReport)
    assert report.process == "tests.engine.seed_flows:scenario1_quality_checks"
    assert report.seed == 3
    assert report.schedules >= 15
    assert report.crashes > 0 and report.injected_failures > 0
    assert report.replays == report.executions
    assert report.elapsed > 0


def test_a_process_defined_in_a_function_skips_only_the_hash_seed_probe() -> None:
    async def local(inputs: Any, ctx: Any) -> Any:
        return await ctx.task(hazards.fetch, {"n": 2})

    report = assert_deterministic(local, None, max_examples=3)
    assert report.hash_seeds == ()
    (note,) = report.notes
    assert "hash-seed probe skipped" in note and "module level" in note


def test_failures_and_crashes_can_be_switched_off() -> None:
    report = assert_deterministic(
        seed_examples.pitfall1_right,
        None,
        max_examples=10,
        failures=False,
        crashes=False,
        hash_seeds=0,
    )
    assert report.crashes == report.injected_failures == 0
    assert report.hash_seeds == ()


@settings(max_examples=1, deadline=None)
@given(st.just(None))
def test_it_refuses_to_nest_inside_given(_: None) -> None:
    with pytest.raises(RuntimeError, match="check_schedule"):
        assert_deterministic(hazards.random_fixed)


def test_a_failure_is_an_assertion_error_with_fields() -> None:
    failure = failure_of(hazards.direct_random, max_examples=2)
    assert isinstance(failure, AssertionError)
    assert failure.process == "tests.testing.hazards:direct_random"
    assert failure.schedule == Schedule()
    assert failure.error is not None and failure.error.key == "0"
