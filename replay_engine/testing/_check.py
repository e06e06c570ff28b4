"""Checking schedules against their baselines, with three probes.

Three independent probes, from cheapest to most expensive:

1. *Self-replay*: after every execution, the process is replayed against its
   own finished journal (``Engine.replay``: nothing is dispatched). A process
   that reads the clock or ``random`` directly makes different calls and the
   engine raises :class:`~replay_engine.NonDeterminismError` naming the key
   and the call site.
2. *Cross-schedule comparison*: the trace of an execution under delays and
   crashes must equal the trace of the uninterrupted execution under the same
   injected failures. Completion-order dependence shows up here.
3. *Another interpreter*: the reference journal is replayed in fresh
   interpreters with other ``PYTHONHASHSEED`` values (see ``_hashseed``),
   which is the only way to see the iteration order of a set of strings change.

A race's winner (``race_won``) and a fail-fast group's failing branch
(``failed_fast``) are recorded choices: probe 1 checks each run replays them;
probe 2 compares an execution with the first one (under the same injected
failures) that made the same choices, so every winner reached is explored.
A process that goes wrong around a race still fails probe 1 or 2.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import Engine, NonDeterminismError, ReplayEngineError
from .._testing_seam import process_reference
from . import _hashseed as hashseed, _messages as messages
from ._fakes import FakeTasks
from ._messages import DeterminismFailure
from ._schedule import (
    DEFAULT_RUN_ID,
    Execution,
    ProcessFn,
    Schedule,
    ScheduleDiverged,
    as_fakes,
    execute,
    replayed_call,
)
from ._trace import Difference, Trace, first_difference, short, value_digest


@dataclass
class Stats:
    """What a :class:`ScheduleChecker` exercised."""

    schedules: int = 0
    executions: int = 0
    """Executions of the process, baselines included."""
    crash_points: int = 0
    """Crash points of the schedules executed."""
    crashes: int = 0
    """Simulated crashes that happened (each followed by a resume)."""
    resumes: int = 0
    injected: int = 0
    """Keys with injected failures, over all executions."""
    replays: int = 0
    race_outcomes: int = 0
    """Distinct sets of race winners seen (each compared within its own class)."""
    hash_seeds: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class ScheduleChecker:
    """Checks schedules of one process and inputs against their baselines.

    :func:`assert_deterministic` and :func:`check_schedule` are built on it;
    use it directly in a property of your own to check many schedules
    without re-running baselines (they are cached per set of injected
    failures)::

        @given(st.data())
        def test_shapes(data):
            with ScheduleChecker(process, inputs) as checker:
                reference = checker.reference
                for _ in range(4):
                    checker.check(data.draw(schedules(reference.task_keys,
                                                      reference.events)))

    Args:
        process: the process function.
        inputs: its inputs (the same for every execution).
        fakes: tasks to answer instead of executing (through the engine's
            fake hook).
        run_id: the run id of every execution.
        seed: the hypothesis seed to print in failure messages, if any.

    Attributes:
        stats: what was exercised so far (schedules, executions, crashes ...).

    Every execution gets a fresh journal in a temporary directory, removed
    when the checker is closed.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        process: ProcessFn,
        inputs: Any,
        *,
        fakes: FakeTasks | Mapping[str, Any] | None = None,
        run_id: str = DEFAULT_RUN_ID,
        seed: int | None = None,
    ) -> None:
        self.process = process
        self.inputs = inputs
        self.fakes = as_fakes(fakes)
        if self.fakes is not None:
            self.fakes.check_names()  # a typo in a task name fails here, clearly
        self.run_id = run_id
        self.seed = seed
        self.ref = process_reference(process)
        self.stats = Stats()
        self._dir = Path(tempfile.mkdtemp(prefix="replay-determinism-"))
        self._baselines: dict[tuple[tuple[str, int], ...], tuple[Trace, str]] = {}
        # (injected failures, race winners) -> the first trace that recorded them
        self._classes: dict[tuple[Any, ...], Trace] = {}
        self._count = 0

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> ScheduleChecker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- executions ----------------------------------------------------------------

    def _path(self) -> str:
        self._count += 1
        return str(self._dir / f"x{self._count}")

    def _run(self, schedule: Schedule) -> tuple[Execution, str]:
        path = self._path()
        self.stats.executions += 1
        self.stats.injected += len(schedule.failures)
        self.stats.crash_points += len(schedule.crash_after)
        try:
            execution = execute(
                self.process,
                self.inputs,
                schedule,
                path,
                run_id=self.run_id,
                fakes=self.fakes,
            )
        except ScheduleDiverged as diverged:
            self.stats.crashes += diverged.crashes
            raise self._diverged(
                schedule, diverged.error, diverged.stage, path
            ) from None
        self.stats.crashes += execution.crashes
        self.stats.resumes += execution.resumes
        self._self_replay(schedule, execution.trace, path)
        return execution, path

    @property
    def reference(self) -> Trace:
        """The trace of the uninterrupted execution (no failures injected)."""
        return self.baseline(Schedule())[0]

    def baseline(self, schedule: Schedule) -> tuple[Trace, str]:
        """The uninterrupted execution under ``schedule``'s failures (cached)."""
        base = schedule.baseline()
        key = tuple(base.failures.items())
        if key not in self._baselines:
            execution, path = self._run(base)
            self._baselines[key] = (execution.trace, path)
            self._reference_of(key, execution.trace)
        return self._baselines[key]

    def _reference_of(self, failures: tuple[Any, ...], trace: Trace) -> Trace:
        """The first trace with ``trace``'s race winners (``trace`` if it is)."""
        found = self._classes.setdefault((failures, trace.decisions), trace)
        if found is trace and trace.decisions:
            self.stats.race_outcomes += 1
        return found

    def check(self, schedule: Schedule) -> Execution | None:
        """Execute under ``schedule`` and compare with its baseline.

        Raises:
            DeterminismFailure: anything differed.
        """
        self.stats.schedules += 1
        base, _ = self.baseline(schedule)
        if not schedule.interrupted:
            return None
        execution, path = self._run(schedule)
        labels = ("uninterrupted", "this schedule")
        if execution.trace.decisions != base.decisions:
            # Its races went another way: a recorded choice, not a difference.
            failures = tuple(schedule.baseline().failures.items())
            base = self._reference_of(failures, execution.trace)
            labels = ("same race winners", "this schedule")
        difference = first_difference(base, execution.trace)
        if difference is not None:
            site = self._site(path, difference.key)
            raise self._failure(
                schedule,
                difference,
                site=site,
                labels=labels,
                stage=messages.stage_of(schedule, execution),
            )
        shutil.rmtree(path, ignore_errors=True)
        return execution

    # -- probes --------------------------------------------------------------------

    def _self_replay(self, schedule: Schedule, trace: Trace, path: str) -> None:
        """Replay the finished journal in this interpreter; it must agree."""
        self.stats.replays += 1
        with Engine(path, durability="process") as engine:
            try:
                snapshot = engine.replay(self.run_id, process=self.process)
            except NonDeterminismError as exc:
                if not exc.key and trace.status == "completed":
                    # Not at a call: the replay of this complete history
                    # returned something else (``Engine.replay`` checks it).
                    raise self._failure(
                        schedule,
                        Difference(
                            None,
                            "replaying its journal, it made the same calls but"
                            " returned a different result",
                            short(trace.result_value),
                            exc.replayed.removeprefix("the process returned "),
                        ),
                        labels=("recorded", "replayed"),
                        stage="replaying the journal it had just written",
                    ) from None
                raise self._diverged(
                    schedule,
                    exc,
                    "replaying the journal this execution had just written (nothing"
                    " dispatched: every result came from the journal)",
                    path,
                    trace,
                ) from None
        if trace.status != "completed" or snapshot.process_status != "completed":
            return
        if value_digest(snapshot.result) != value_digest(trace.result_value):
            difference = Difference(
                None,
                "replaying its journal, it made the same calls but returned a"
                " different result",
                short(trace.result_value),
                short(snapshot.result),
            )
            raise self._failure(
                schedule,
                difference,
                labels=("recorded", "replayed"),
                stage="replaying the journal it had just written",
            )

    def _site(self, path: str, key: str | None) -> str | None:
        """``file:line`` of the call at ``key``: time travel stops right there."""
        if key is None:
            return None
        try:
            with Engine(path, durability="process") as engine:
                snapshot = engine.replay(
                    self.run_id, until=f"key:{key}", process=self.process
                )
        except (ReplayEngineError, ValueError):
            return None
        for call in snapshot.frontier:
            if call.key == key:
                return call.site
        return None

    # -- failures --------------------------------------------------------------------

    def _diverged(
        self,
        schedule: Schedule,
        error: NonDeterminismError,
        stage: str,
        path: str,
        trace: Trace | None = None,
    ) -> DeterminismFailure:
        recorded, replayed = error.recorded, error.replayed
        if trace is not None and error.key in trace.calls:
            recorded = trace.calls[error.key].describe()
        what = "it made different calls than its own journal records"
        if error.seq is not None and error.key and trace is not None:
            now = replayed_call(path, self.run_id, self.process, error.key, error.seq)
            change = messages.change(trace, error.key, now)
            if change is not None and now is not None:
                what, replayed = change, now.describe(outcome=False)
        match = messages.SITE.search(str(error))
        difference = Difference(error.key or None, what, recorded, replayed)
        return self._failure(
            schedule,
            difference,
            site=match.group(1) if match else None,
            labels=("recorded", "replayed"),
            stage=stage,
            error=error,
        )

    def _failure(
        self, schedule: Schedule, difference: Difference, **kwargs: Any
    ) -> DeterminismFailure:
        subject = messages.Subject(
            self.process, self.ref, self.inputs, self.fakes, self.run_id, self.seed
        )
        return messages.failure(subject, schedule, difference, **kwargs)

    # -- the hash-seed probe -------------------------------------------------------

    def start_hash_seeds(self, hash_seeds: list[int]) -> hashseed.Children:
        """Start replaying the reference journal under other hash seeds."""
        if not hash_seeds:
            return []
        ref = hashseed.importable_reference(self.process)
        if ref is None:
            self.stats.notes.append(
                f"hash-seed probe skipped: {self.ref} cannot be imported by"
                " module:qualname in another interpreter (define the process at"
                " module level to enable it)"
            )
            return []
        _, path = self.baseline(Schedule())
        return hashseed.start(path, self.run_id, ref, hash_seeds)

    def finish_hash_seeds(self, children: hashseed.Children) -> None:
        """Collect the children's reports.

        Raises:
            DeterminismFailure: a child replayed something else.
        """
        reference, _ = self.baseline(Schedule())
        for seed, out in hashseed.collect(children):
            if isinstance(out, str):
                self.stats.notes.append(
                    f"hash-seed probe with PYTHONHASHSEED={seed}: {out}"
                )
                continue
            self.stats.hash_seeds.append(seed)
            if out.get("diverged") or (
                reference.status == "completed"
                and out.get("result") != value_digest(reference.result_value)
            ):
                difference, site = messages.hash_seed_difference(out, reference)
                raise self._failure(
                    Schedule(),
                    difference,
                    site=site,
                    labels=("recorded", f"PYTHONHASHSEED={seed}"),
                    hash_seed=seed,
                    stage=f"replaying the uninterrupted run with PYTHONHASHSEED={seed}",
                    remedy=messages.HASH_REMEDY,
                )


def check_schedule(
    process: ProcessFn,
    inputs: Any = None,
    schedule: Schedule | None = None,
    *,
    fakes: FakeTasks | Mapping[str, Any] | None = None,
    run_id: str = DEFAULT_RUN_ID,
    hash_seed: int | None = None,
) -> Execution | None:
    """Check one schedule: it must do exactly what the uninterrupted run does.

    Runs the baseline (``schedule.baseline()``: the same injected failures, no
    delays, no crashes) and then ``schedule``, replays each journal against
    the process, and compares keys, task names, args, outcomes, log lines and
    the final outcome. This is what the reproduction snippet of a failure
    calls.

    Args:
        process: the process function.
        inputs: its inputs.
        schedule: the schedule (``Schedule()``: just the baseline).
        fakes: tasks to answer instead of executing.
        run_id: the run id of every execution.
        hash_seed: also replay the uninterrupted run in a fresh interpreter
            with this ``PYTHONHASHSEED`` (the process must be importable).

    Returns:
        The execution under ``schedule`` (None when it is its own baseline).

    Raises:
        DeterminismFailure: something differed; the message says what.

    .. versionadded:: 0.1
    """
    with ScheduleChecker(process, inputs, fakes=fakes, run_id=run_id) as checker:
        execution = checker.check(schedule or Schedule())
        if hash_seed is not None:
            checker.finish_hash_seeds(checker.start_hash_seeds([hash_seed]))
        return execution
