"""Hypothesis strategies for schedules, for determinism properties of your own.

:func:`~replay_engine.testing.assert_deterministic` draws from these; use them
directly to write your own properties, for example with ``st.data()``::

    from hypothesis import given, strategies as st
    from replay_engine.testing import check_schedule, run_schedule
    from replay_engine.testing.strategies import schedules

    @given(st.data())
    def test_deploy_is_deterministic(data):
        reference = run_schedule(deploy_process, {"env": "prod"})
        schedule = data.draw(schedules(reference.trace.task_keys,
                                       reference.trace.events))
        check_schedule(deploy_process, {"env": "prod"}, schedule)

Every strategy shrinks towards "nothing happens": no delays, no failures, no
crashes, so a failure is reported with the smallest schedule that shows it.

.. versionadded:: 0.1
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hypothesis import strategies as st

from ._schedule import Schedule

DEFAULT_MAX_DELAY = 0.02
"""Seconds: the longest delay drawn by default."""


def delays(
    keys: Sequence[str], *, max_delay: float = DEFAULT_MAX_DELAY, levels: int = 4
) -> st.SearchStrategy[dict[str, float]]:
    """Per-key completion delays: a few keys held back by one of ``levels`` steps.

    Delays are multiples of ``max_delay / levels`` so that two delayed effects
    complete in a definite order (a step is far longer than a task's jitter).
    """
    if not keys or max_delay <= 0:
        return st.just({})
    step = max_delay / levels
    return st.dictionaries(
        st.sampled_from(list(keys)),
        st.integers(1, levels).map(lambda i: round(i * step, 6)),
        max_size=len(keys),
    )


def failures(
    keys: Sequence[str], *, max_attempts: int = 2, max_keys: int = 2
) -> st.SearchStrategy[dict[str, int]]:
    """Injected failures: up to ``max_keys`` effects whose first attempts fail."""
    if not keys or max_keys <= 0:
        return st.just({})
    return st.dictionaries(
        st.sampled_from(list(keys)), st.integers(1, max_attempts), max_size=max_keys
    )


def crash_points(
    events: int, *, max_crashes: int = 3
) -> st.SearchStrategy[tuple[int, ...]]:
    """Up to ``max_crashes`` journal sizes (1..``events``) at which to crash."""
    if events < 1 or max_crashes <= 0:
        return st.just(())
    return st.lists(st.integers(1, events), max_size=max_crashes, unique=True).map(
        lambda points: tuple(sorted(points))
    )


def schedules(
    keys: Sequence[str] = (),
    events: int = 0,
    *,
    max_delay: float = DEFAULT_MAX_DELAY,
    inject_failures: bool = True,
    crashes: bool = True,
    max_crashes: int = 3,
) -> st.SearchStrategy[Schedule]:
    """Whole schedules for a process whose uninterrupted run had these keys/events.

    Args:
        keys: invocation keys of the effects to steer (``Trace.task_keys`` of
            a reference execution).
        events: journal size of the reference execution; crash points are
            drawn in ``1..events``.
        max_delay: the longest completion delay, in seconds.
        inject_failures: also draw injected task failures.
        crashes: also draw crash points.
        max_crashes: at most this many crashes per schedule.
    """
    return st.builds(
        Schedule,
        delays=delays(keys, max_delay=max_delay),
        failures=failures(keys) if inject_failures else st.just({}),
        crash_after=crash_points(events, max_crashes=max_crashes)
        if crashes
        else st.just(()),
    )


@dataclass(frozen=True)
class Plan:
    """A schedule drawn before the process has run: positions, not keys.

    Hypothesis needs every example to draw the same way each time it runs
    it. When the keys come from a reference execution that may itself fail
    (on replay, or only sometimes), draw a plan *first* and turn it into a
    schedule afterwards with :meth:`schedule`.

    Attributes:
        delays: ``(position, level)``: the key at ``position`` (modulo the
            number of keys) is held back ``level`` steps of ``max_delay / 4``.
        failures: ``(position, attempts)``: that many leading attempts fail.
        crash_after: positions of crash points (modulo the journal size).
    """

    delays: tuple[tuple[int, int], ...] = ()
    failures: tuple[tuple[int, int], ...] = ()
    crash_after: tuple[int, ...] = ()

    def schedule(
        self, keys: Sequence[str], events: int, *, max_delay: float = DEFAULT_MAX_DELAY
    ) -> Schedule:
        """The schedule this plan means for a process with these keys and events."""
        if not keys:
            return Schedule(
                crash_after=tuple(1 + p % events for p in self.crash_after)
                if events
                else ()
            )
        step = max_delay / 4
        return Schedule(
            delays={
                keys[p % len(keys)]: round(lvl * step, 6) for p, lvl in self.delays
            },
            failures={keys[p % len(keys)]: n for p, n in self.failures},
            crash_after=tuple(1 + p % events for p in self.crash_after)
            if events
            else (),
        )


def plans(*, max_keys: int = 8, max_crashes: int = 3) -> st.SearchStrategy[Plan]:
    """Plans (see :class:`Plan`); they shrink to the empty plan."""
    positions = st.integers(0, 1000)
    return st.builds(
        Plan,
        delays=st.lists(st.tuples(positions, st.integers(1, 4)), max_size=max_keys).map(
            tuple
        ),
        failures=st.lists(st.tuples(positions, st.integers(1, 2)), max_size=2).map(
            tuple
        ),
        crash_after=st.lists(positions, max_size=max_crashes).map(tuple),
    )


__all__ = ["Plan", "crash_points", "delays", "failures", "plans", "schedules"]
