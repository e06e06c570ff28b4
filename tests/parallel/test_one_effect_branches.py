"""Branches that are exactly one ``ctx.task`` share a context (``parallel.refill``).

The shared context is an optimisation of the fresh fan-out: the journal must
be the one the general path (each branch its own context) writes, event by
event, under any completion order, injected failures with retries, crash
points and ``limit``; and no branch may see a context variable a sibling set.
"""

from __future__ import annotations

import tempfile
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

import journal_format as jf
from replay_engine import Engine
from replay_engine.testing import Schedule, run_schedule
from tests.journal_views import describe

from . import one_effect_flows as flows


def _events(path: str) -> list[tuple[Any, ...]]:
    """Every event's content, in journal order.

    Without ``run_started``'s process name: the processes differ by name.
    """
    with Engine(path) as engine:
        return [
            describe(s.event)[3:] if s.seq == 0 else describe(s.event)
            for s in engine.events("determinism")
            if not isinstance(s.event, jf.ExecutionStarted)
        ]


def _run(process: Any, inputs: dict[str, Any], schedule: Schedule) -> tuple[Any, Any]:
    """The result, each key's events in journal order, and every event counted.

    Not the one interleaving of all events: which sibling's completion is
    journaled first is timing (the schedule's delays hold branches apart, but
    a loaded host can still swap two), so two executions of the same path may
    interleave differently. A branch that took another key, or lost, doubled
    or reordered an event of its own, changes what is compared.
    """
    with tempfile.TemporaryDirectory() as path:
        execution = run_schedule(process, inputs, schedule, path=path)
        assert execution.status == "completed"
        events = _events(path)
    by_key: dict[Any, list[tuple[Any, ...]]] = {}
    for event in events:
        by_key.setdefault(event[0], []).append(event)
    return execution.result, (by_key, sorted(map(repr, events)))


@settings(max_examples=15, deadline=None)
@given(
    n=st.integers(1, 5),
    limit=st.sampled_from([None, 1, 2]),
    order=st.permutations(range(5)),
    failures=st.dictionaries(st.integers(0, 4), st.integers(1, 2), max_size=2),
    crash_after=st.lists(st.integers(2, 14), max_size=2),
    shape=st.sampled_from(["fast", "mixed"]),
)
def test_one_effect_branches_journal_what_the_general_path_does(
    n: int,
    limit: int | None,
    order: list[int],
    failures: dict[int, int],
    crash_after: list[int],
    shape: str,
) -> None:
    # Completion order: branch j held back by its rank (well apart, so the
    # order survives a loaded host); a failure count of 2 outlasts the retry.
    delays = {f"0.{j}.0": 0.03 * rank for rank, j in enumerate(order) if j < n}
    schedule = Schedule(
        delays=delays,
        failures={f"0.{j}.0": k for j, k in failures.items() if j < n},
        crash_after=tuple(crash_after),
    )
    inputs = {"n": n, "limit": limit}
    process = flows.fast_map if shape == "fast" else flows.mixed_map
    fast = _run(process, inputs, schedule)
    general = _run(flows.general_map, inputs, schedule)
    assert fast == general


@pytest.mark.parametrize("awaited", [False, True])
@pytest.mark.parametrize("limit", [None, 1])
def test_no_branch_sees_a_context_variable_a_sibling_set(
    awaited: bool, limit: int | None
) -> None:
    flows.SEEN.clear()
    with tempfile.TemporaryDirectory() as path, Engine(path) as engine:
        run = engine.run(
            flows.setting_map, {"n": 4, "limit": limit, "await": awaited}, run_id="r"
        )
    assert run.status == "completed"
    assert run.result == [0, 10, 20, 30]
    # Each branch's function saw its caller's value, whichever branch's
    # completion started it (limit=1: each from its sibling's wake-up).
    assert sorted(flows.SEEN) == [(i, "caller") for i in range(4)]
