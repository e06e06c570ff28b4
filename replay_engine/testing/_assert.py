"""``assert_deterministic``: search schedules with hypothesis, report the smallest."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._check import ScheduleChecker
from ._fakes import FakeTasks
from ._hashseed import seeds, stop
from ._messages import DeterminismFailure
from ._schedule import DEFAULT_RUN_ID, ProcessFn, Schedule

DEFAULT_MAX_EXAMPLES = 30

_defaults: dict[str, int | None] = {"max_examples": None, "seed": None}


def configure(*, max_examples: int | None = None, seed: int | None = None) -> None:
    """Set the defaults ``assert_deterministic`` uses when not told otherwise.

    The pytest plugin calls this for ``--replay-schedules`` and
    ``--replay-seed``.
    """
    _defaults["max_examples"] = max_examples
    _defaults["seed"] = seed


@dataclass(frozen=True)
class DeterminismReport:
    """What a passing :func:`assert_deterministic` exercised.

    .. versionadded:: 0.1
    """

    process: str
    schedules: int
    """Schedules checked (hypothesis examples, shrinking included)."""
    executions: int
    """Executions of the process (baselines included)."""
    crashes: int
    """Simulated crashes that happened, each followed by a resume."""
    injected_failures: int
    replays: int
    """Replays of a finished journal in this interpreter."""
    hash_seeds: tuple[int, ...]
    """PYTHONHASHSEED values the reference journal was replayed under."""
    seed: int
    """The hypothesis seed: pass it back to reproduce this exploration."""
    elapsed: float
    notes: tuple[str, ...] = ()
    """Probes that were skipped, and why."""
    race_outcomes: int = 0
    """Distinct sets of race winners (``ctx.parallel.any``) the schedules
    reached; executions are compared with one that recorded the same winners."""


def assert_deterministic(
    process: ProcessFn,
    inputs: Any = None,
    *,
    max_examples: int | None = None,
    seed: int | None = None,
    fakes: FakeTasks | Mapping[str, Any] | None = None,
    max_delay: float = 0.02,
    failures: bool = True,
    crashes: bool = True,
    hash_seeds: int = 2,
    run_id: str = DEFAULT_RUN_ID,
) -> DeterminismReport:
    """Check that ``process`` does the same thing under every schedule.

    The process is run uninterrupted, then under schedules hypothesis draws:
    effects completing in other orders (per-key delays), injected task
    failures, and simulated crashes after *k* journal events followed by a
    resume. Each execution must record the same keys, task names, args,
    results and log lines, and end with the same result, as the uninterrupted
    execution under the same injected failures. A race's winner
    (``ctx.parallel.any``) is a recorded choice, like ``ctx.now()``: an
    execution whose races went another way is compared with the first one
    that recorded the same winners (see ``race_outcomes`` in the report).
    Every finished journal is also replayed against the process, and the
    reference journal is replayed in ``hash_seeds`` fresh interpreters with
    other ``PYTHONHASHSEED`` values (to catch iteration over sets of strings).

    Args:
        process: the process function. For the hash-seed probe it must be
            importable as ``module:qualname``; otherwise that probe is skipped
            (see the report's ``notes``).
        inputs: its inputs.
        max_examples: schedules to try (default: ``--replay-schedules`` under
            pytest, else 30).
        seed: the hypothesis seed (default: ``--replay-seed``, else random;
            a failure message prints it).
        fakes: tasks to answer instead of executing, see :class:`FakeTasks`.
        max_delay: the longest completion delay drawn, in seconds.
        failures: also inject task failures.
        crashes: also simulate crashes.
        hash_seeds: how many other hash seeds to replay under (0 to skip).
        run_id: the run id of every execution.

    Returns:
        A :class:`DeterminismReport` of what was exercised.

    Raises:
        DeterminismFailure: the process is not deterministic. The message
            names the key, the call site, what differed, the smallest schedule
            found, and a ``check_schedule(...)`` line that reproduces it.
        RuntimeError: called inside a hypothesis test (use
            :func:`check_schedule` with ``data.draw(schedules(...))`` there).

    .. versionadded:: 0.1
    """
    from hypothesis import HealthCheck, Phase, given, seed as use_seed, settings
    from hypothesis.control import currently_in_test_context
    from hypothesis.errors import FlakyFailure

    from .strategies import schedules

    if currently_in_test_context():
        raise RuntimeError(
            "assert_deterministic runs its own hypothesis search and cannot run"
            " inside a @given test; there, draw schedules with"
            " data.draw(replay_engine.testing.strategies.schedules(...)) and call"
            " check_schedule(process, inputs, schedule)"
        )
    examples = max_examples or _defaults["max_examples"] or DEFAULT_MAX_EXAMPLES
    if seed is None:
        seed = _defaults["seed"]
    if seed is None:
        seed = random.SystemRandom().getrandbits(32)
    started = time.perf_counter()
    with ScheduleChecker(
        process, inputs, fakes=fakes, run_id=run_id, seed=seed
    ) as checker:
        reference, _ = checker.baseline(Schedule())
        children = checker.start_hash_seeds(seeds(hash_seeds))
        strategy = schedules(
            reference.task_keys,
            reference.events,
            max_delay=max_delay,
            inject_failures=failures,
            crashes=crashes,
        )

        @settings(
            max_examples=examples,
            database=None,
            deadline=None,
            report_multiple_bugs=False,
            suppress_health_check=list(HealthCheck),
            # No explain phase: our message already says what matters, and
            # explaining re-runs the process many more times.
            phases=(Phase.generate, Phase.shrink),
        )
        @given(strategy)
        def explore(schedule: Schedule) -> None:
            checker.check(schedule)

        try:
            use_seed(seed)(explore)()
        except FlakyFailure as group:
            stop(children)
            failure = _first_failure(group)
            if failure is None:
                raise
            failure.add_note(
                "(This difference did not show on every execution of the same"
                " schedule: it depends on timing as well.)"
            )
            raise failure from None
        except BaseException:
            stop(children)
            raise
        checker.finish_hash_seeds(children)
        stats = checker.stats
    return DeterminismReport(
        process=checker.ref,
        schedules=stats.schedules,
        executions=stats.executions,
        crashes=stats.crashes,
        injected_failures=stats.injected,
        replays=stats.replays,
        hash_seeds=tuple(stats.hash_seeds),
        seed=seed,
        elapsed=time.perf_counter() - started,
        notes=tuple(stats.notes),
        race_outcomes=stats.race_outcomes,
    )


def _first_failure(group: BaseExceptionGroup[Any]) -> DeterminismFailure | None:
    for exc in group.exceptions:
        if isinstance(exc, DeterminismFailure):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            found = _first_failure(exc)
            if found is not None:
                return found
    return None
