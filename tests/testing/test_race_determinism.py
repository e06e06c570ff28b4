"""assert_deterministic and races: a race's winner is a recorded choice.

Which branch of ``ctx.parallel.any`` wins depends on the schedule; what must
hold is that replaying each recorded run reproduces it, and that executions
with the same winners agree. A process that goes wrong around a race (reads
the wall clock) must still fail.
"""

from __future__ import annotations

from typing import Any

import pytest

from replay_engine.testing import (
    DeterminismFailure,
    Schedule,
    assert_deterministic,
    check_schedule,
)

from . import race_flows


@pytest.mark.parametrize(
    "process", [race_flows.race_two_sources, race_flows.race_timer]
)
def test_a_race_whose_winner_depends_on_the_schedule_passes(process: Any) -> None:
    report = assert_deterministic(process, None, max_examples=20, seed=7)
    assert report.schedules >= 1
    assert report.notes == ()


def test_a_schedule_that_makes_the_other_branch_win_passes() -> None:
    # Holding back branch 0 makes branch 1 win: another recorded choice.
    execution = check_schedule(
        race_flows.race_two_sources, None, Schedule(delays={"0.0.0": 0.05})
    )
    assert execution is not None
    assert execution.trace.decisions == (("0", 1),)
    assert execution.trace.result_value == ["stored from b", 1]
    assert execution.trace.calls["0.0.0"].outcome == "abandoned"


def test_both_winners_are_explored_and_counted() -> None:
    report = assert_deterministic(
        race_flows.race_two_sources,
        None,
        max_examples=40,
        seed=3,
        failures=False,
        crashes=False,
        max_delay=0.05,
    )
    assert report.race_outcomes == 2  # branch 0 won in some, branch 1 in others


@pytest.mark.parametrize(
    "process", [race_flows.race_with_clock, race_flows.race_clock_branch]
)
def test_the_wall_clock_around_a_race_still_fails(process: Any) -> None:
    with pytest.raises(DeterminismFailure) as caught:
        assert_deterministic(process, None, max_examples=10, seed=7)
    message = str(caught.value)
    assert "# clock" in message or "race_flows.py" in message


def test_a_fail_fast_group_whose_first_failure_depends_on_the_schedule_passes() -> None:
    execution = check_schedule(
        race_flows.fail_fast_two_failures, None, Schedule(delays={"0.0.0": 0.05})
    )
    assert execution is not None
    assert execution.trace.decisions == (("0", 1),)
    report = assert_deterministic(
        race_flows.fail_fast_two_failures, None, max_examples=20, seed=5
    )
    assert report.notes == ()
