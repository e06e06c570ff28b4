"""``settled`` and ``fail_fast`` under any completion order and crash points.

The outcome does not depend on timing: a settled group returns the same list,
a fail-fast group raises the same (only) failure, and a replay of the whole
history agrees without dispatching anything.
"""

from __future__ import annotations

import tempfile

from hypothesis import given, settings, strategies as st

from replay_engine import Engine
from replay_engine.testing import Schedule, run_schedule

from .par_flows import fail_fast_three


@settings(max_examples=20)
@given(
    order=st.permutations(range(3)),
    crash_after=st.lists(st.integers(1, 10), max_size=2),
    mode=st.sampled_from(["settled", "fail_fast"]),
)
def test_outcome_is_independent_of_timing(
    order: list[int], crash_after: list[int], mode: str
) -> None:
    delays = {f"0.{branch}.0": 0.05 * rank for rank, branch in enumerate(order)}
    schedule = Schedule(delays=delays, crash_after=tuple(crash_after))
    inputs = {"settled": mode == "settled", "fail_fast": mode == "fail_fast"}
    expected = [0, "0.1.0", 20] if inputs["settled"] else {"failed": "0.1.0"}
    with tempfile.TemporaryDirectory() as path:
        execution = run_schedule(fail_fast_three, inputs, schedule, path=path)
        assert execution.status == "completed"
        assert execution.result == expected
        with Engine(path) as engine:
            events = engine.events("determinism")
            engine.fork("determinism", at=len(events) - 1, new_run_id="again")
            again = engine.resume("again", process=fail_fast_three)
            assert again.result == expected
            assert again.stats.dispatched == 0
