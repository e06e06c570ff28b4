"""Schedules, run_schedule and the strategies: what assert_deterministic is built on."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from hypothesis import find, given, settings, strategies as st

import journal_format as jf
from replay_engine import Engine, NonDeterminismError, task
from replay_engine.testing import (
    InjectedFailure,
    Schedule,
    ScheduleChecker,
    check_schedule,
    run_schedule,
)
from replay_engine.testing.strategies import (
    Plan,
    crash_points,
    delays,
    failures,
    plans,
    schedules,
)

from . import hazards


@task(executor="inline")
def step(n: int) -> int:
    return n + 1


@task(retries=1, executor="inline")
def retried(n: int) -> int:
    return n * 2


async def fan_out(inputs: Any, ctx: Any) -> Any:
    first = await ctx.task(step, {"n": 0})
    rest = await ctx.parallel.map(range(3), lambda i: ctx.task(step, {"n": i + first}))
    return {"first": first, "rest": rest, "now": ctx.now().isoformat()}


async def with_retry(inputs: Any, ctx: Any) -> Any:
    return await ctx.task(retried, {"n": 21})


def test_a_schedule_prints_as_python_that_rebuilds_it() -> None:
    schedule = Schedule(delays={"0.1.0": 0.01, "0": 0.0}, crash_after=(7, 3, 3))
    assert (
        repr(schedule)
        == "Schedule(delays={'0': 0.0, '0.1.0': 0.01}, crash_after=(3, 7))"
    )
    assert eval(repr(schedule)) == schedule
    assert repr(Schedule()) == "Schedule()"
    assert Schedule(failures={"1": 2}).baseline() == Schedule(failures={"1": 2})
    assert not Schedule(failures={"1": 2}).interrupted


@pytest.mark.parametrize(
    "bad",
    [
        {"delays": {"0": -1.0}},
        {"failures": {"0": 0}},
        {"crash_after": (0,)},
    ],
)
def test_a_schedule_refuses_nonsense(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Schedule(**bad)


def test_an_uninterrupted_execution() -> None:
    execution = run_schedule(fan_out, None)
    assert execution.status == "completed"
    assert execution.result["rest"] == [2, 3, 4]
    assert execution.crashes == execution.resumes == 0
    assert execution.trace.task_keys == ["0", "1.0.0", "1.1.0", "1.2.0"]
    assert execution.trace.order[-1] == "2"  # ctx.now() took key 2
    # ctx.now() reads the simulated clock: the same under every schedule.
    assert execution.result["now"] == "2024-01-01T00:00:00+00:00"


def test_crash_points_crash_and_resume_to_the_same_trace(tmp_path: Path) -> None:
    base = run_schedule(fan_out, None)
    crashed = run_schedule(
        fan_out, None, Schedule(crash_after=(2, 4, 4000)), path=str(tmp_path / "j")
    )
    assert crashed.crashes == 2  # the journal never reaches 4000 events
    assert crashed.resumes == 2
    assert crashed.path == str(tmp_path / "j")
    assert {k: c.signature() for k, c in crashed.trace.calls.items()} == {
        k: c.signature() for k, c in base.trace.calls.items()
    }
    assert crashed.trace.outcome() == base.trace.outcome()
    with Engine(str(tmp_path / "j")) as engine:
        assert engine.verify("determinism").ok


def test_delays_reorder_completions(tmp_path: Path) -> None:
    orders = []
    for n, schedule in enumerate(
        [Schedule(), Schedule(delays={"1.0.0": 0.03, "1.1.0": 0.015})]
    ):
        path = str(tmp_path / f"j{n}")
        run_schedule(fan_out, None, schedule, path=path)
        with Engine(path) as engine:
            orders.append(
                [
                    jf.key_bytes_to_text(s.event.key)
                    for s in engine.events("determinism")
                    if isinstance(s.event, jf.EffectCompleted)
                ]
            )
    assert orders[0] == ["0", "1.0.0", "1.1.0", "1.2.0"]
    assert orders[1] == ["0", "1.2.0", "1.1.0", "1.0.0"]


def test_injected_failures_fail_leading_attempts() -> None:
    once = run_schedule(with_retry, None, Schedule(failures={"0": 1}))
    assert once.result == 42
    assert once.trace.calls["0"].failed_attempts == 1
    twice = run_schedule(with_retry, None, Schedule(failures={"0": 2}))
    assert twice.status == "failed"
    error = twice.trace.calls["0"].error
    assert error is not None
    assert error[0] == f"{InjectedFailure.__module__}.InjectedFailure"
    assert "key 0 (attempt 2)" in error[1]


def test_a_resume_that_diverges_raises_nondeterminism() -> None:
    with pytest.raises(NonDeterminismError) as caught:
        run_schedule(hazards.direct_random, None, Schedule(crash_after=(2,)))
    assert "simulated crash 1" in "".join(caught.value.__notes__)


def test_check_schedule_passes_and_returns_the_execution() -> None:
    execution = check_schedule(fan_out, None, Schedule(delays={"0": 0.005}))
    assert execution is not None and execution.status == "completed"
    assert check_schedule(fan_out) is None  # Schedule() is its own baseline


def test_the_checker_caches_baselines_per_failure_set() -> None:
    with ScheduleChecker(fan_out, None) as checker:
        checker.check(Schedule(delays={"0": 0.001}))
        checker.check(Schedule(crash_after=(3,)))
        checker.check(Schedule(failures={"0": 1}, crash_after=(2,)))
        assert checker.stats.executions == 5  # two baselines, three schedules
        assert checker.stats.crash_points == 2
        assert checker.reference.status == "completed"


# -- strategies ------------------------------------------------------------------


def test_strategies_shrink_to_nothing_happening() -> None:
    keys = ["0", "1.0.0", "1.1.0"]
    assert find(schedules(keys, 10), lambda s: True) == Schedule()
    assert find(delays(keys), lambda d: True) == {}
    assert find(failures(keys), lambda f: True) == {}
    assert find(crash_points(10), lambda c: True) == ()


def test_empty_inputs_give_empty_strategies() -> None:
    assert find(schedules([], 0), lambda s: True) == Schedule()


@settings(max_examples=50, deadline=None)
@given(st.data())
def test_drawn_schedules_are_within_bounds(data: st.DataObject) -> None:
    keys = data.draw(
        st.lists(st.sampled_from(["0", "1", "2.0.0", "2.1.0"]), unique=True)
    )
    events = data.draw(st.integers(0, 40))
    schedule = data.draw(schedules(keys, events, max_delay=0.02))
    assert set(schedule.delays) <= set(keys)
    assert all(0 < d <= 0.02 for d in schedule.delays.values())
    assert set(schedule.failures) <= set(keys) and len(schedule.failures) <= 2
    assert all(1 <= k <= events for k in schedule.crash_after)
    assert len(schedule.crash_after) <= 3


def test_the_simulated_clock_is_fixed() -> None:
    first = run_schedule(fan_out, None, Schedule(delays={"0": 0.01}))
    assert first.result["now"] == dt.datetime(2024, 1, 1, tzinfo=dt.UTC).isoformat()


def test_a_plan_resolves_positions_against_the_keys() -> None:
    plan = Plan(delays=((0, 1), (5, 4)), failures=((1, 2),), crash_after=(0, 12))
    schedule = plan.schedule(["0", "1.0.0", "1.1.0"], events=10, max_delay=0.02)
    assert schedule == Schedule(
        delays={"0": 0.005, "1.1.0": 0.02},
        failures={"1.0.0": 2},
        crash_after=(1, 3),
    )
    assert plan.schedule([], events=0) == Schedule()
    assert find(plans(), lambda p: True) == Plan()
