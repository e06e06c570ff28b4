"""Schedules: what the outside world does to one execution, and running under one.

A :class:`Schedule` fixes the choices the real world would make: how long each
effect takes to complete (so parallel branches finish in any order), which
attempts fail, and after how many journal events the process dies. Running a
process under it (:func:`run_schedule`) starts the run, simulates each crash
(the engine stops writing after exactly *k* events, as if SIGKILLed), resumes
it with a fresh :class:`~replay_engine.Engine` until it ends, and reads a
:class:`~replay_engine.testing.Trace` back from the journal.

``ctx.now()`` reads a fixed simulated clock under a schedule, so a process
that (correctly) uses it behaves the same under every schedule; durable
timers still sleep their real duration.
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import Engine, NonDeterminismError, ReplayEngineError
from .._testing_seam import Hooks
from ._fakes import FakeTasks
from ._trace import CallRecord, Trace, build_trace

ProcessFn = Callable[[Any, Any], Coroutine[Any, Any, Any]]

CLOCK_NS = 1_704_067_200 * 10**9
"""The simulated clock behind ``ctx.now()`` under a schedule: 2024-01-01T00:00Z."""

DEFAULT_RUN_ID = "determinism"
"""The run id every execution uses, so ``ctx.random()``/``ctx.uuid()`` agree."""


class InjectedFailure(Exception):
    """The exception a :class:`Schedule` injects into a failing attempt."""


@dataclass(frozen=True)
class Schedule:
    """The outside world's choices for one execution.

    Attributes:
        delays: invocation key -> seconds by which to hold back the completion
            of every attempt of the effect at that key. Different delays make
            parallel branches complete in different orders.
        failures: invocation key -> how many leading attempts of that effect
            fail with :class:`InjectedFailure` (``1``: the first attempt fails;
            without retries the call raises ``TaskFailed``).
        crash_after: journal sizes (in events, counting ``run_started``) at
            which an execution dies; after each crash the run is resumed by a
            fresh engine, which the next crash point may kill again.

    The repr is valid Python, so a failing schedule can be pasted back::

        Schedule(delays={"0.1.0": 0.01}, crash_after=(4,))

    .. versionadded:: 0.1
    """

    delays: Mapping[str, float] = field(default_factory=dict)
    failures: Mapping[str, int] = field(default_factory=dict)
    crash_after: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if any(d < 0 for d in self.delays.values()):
            raise ValueError("Schedule delays must be >= 0 seconds")
        if any(n < 1 for n in self.failures.values()):
            raise ValueError("Schedule failures count failing attempts: use >= 1")
        if any(k < 1 for k in self.crash_after):
            raise ValueError("Schedule crash points are event counts >= 1")
        # Normalised, so equal schedules print (and compare) the same.
        object.__setattr__(self, "delays", dict(sorted(self.delays.items())))
        object.__setattr__(self, "failures", dict(sorted(self.failures.items())))
        object.__setattr__(self, "crash_after", tuple(sorted(set(self.crash_after))))

    def __repr__(self) -> str:
        parts = [
            f"{name}={value!r}"
            for name, value in (
                ("delays", self.delays),
                ("failures", self.failures),
                ("crash_after", self.crash_after),
            )
            if value
        ]
        return f"Schedule({', '.join(parts)})"

    @property
    def interrupted(self) -> bool:
        """True when it delays or crashes anything (so it differs from its baseline)."""
        return bool(self.delays or self.crash_after)

    def baseline(self) -> Schedule:
        """The same world (the same failures) with no delays and no crashes."""
        return Schedule(failures=self.failures)

    def hooks(
        self, crash_after_events: int | None = None, fakes: FakeTasks | None = None
    ) -> Hooks:
        """Engine hooks enacting this schedule for one execution."""
        delays, failures = self.delays, self.failures

        def delay(key: str, task: str, attempt: int) -> float:
            return delays.get(key, 0.0)

        def fail(key: str, task: str, attempt: int) -> BaseException | None:
            if attempt <= failures.get(key, 0):
                return InjectedFailure(
                    f"failure injected by the schedule at key {key} (attempt {attempt})"
                )
            return None

        return Hooks(
            delay=delay if delays else None,
            fail=fail if failures else None,
            fake=fakes.hook if fakes is not None else None,
            crash_after_events=crash_after_events,
            clock_ns=lambda: CLOCK_NS,
        )


@dataclass
class Execution:
    """One execution of a process under a schedule, crashes and resumes included."""

    schedule: Schedule
    run_id: str
    trace: Trace
    crashes: int = 0
    """Simulated crashes that happened (a crash point past the end never fires)."""
    resumes: int = 0
    path: str | None = None
    """The journal directory, when the caller asked to keep it."""

    @property
    def status(self) -> str:
        """``"completed"``, ``"failed"`` or ``"waiting"``."""
        return self.trace.status

    @property
    def result(self) -> Any:
        """The process's result, when completed."""
        return self.trace.result_value


class ScheduleDiverged(Exception):
    """Internal: a resume under the schedule raised NonDeterminismError."""

    def __init__(self, error: NonDeterminismError, stage: str, crashes: int) -> None:
        super().__init__(str(error))
        self.error = error
        self.stage = stage
        self.crashes = crashes


def as_fakes(fakes: FakeTasks | Mapping[str, Any] | None) -> FakeTasks | None:
    """``fakes`` as a :class:`FakeTasks` (a plain mapping is wrapped)."""
    if fakes is None or isinstance(fakes, FakeTasks):
        return fakes
    return FakeTasks(fakes)


def execute(
    process: ProcessFn,
    inputs: Any,
    schedule: Schedule,
    path: str,
    *,
    run_id: str = DEFAULT_RUN_ID,
    fakes: FakeTasks | None = None,
) -> Execution:
    """Run ``process`` in a new journal at ``path`` under ``schedule``.

    Raises:
        ScheduleDiverged: a resume after a crash diverged from the journal.
    """
    points = list(schedule.crash_after)
    crashes = resumes = 0
    hooks = schedule.hooks(points.pop(0) if points else None, fakes)
    with Engine(path, durability="process", hooks=hooks) as engine:
        engine.run(process, inputs, run_id=run_id)
    while hooks.crashed:
        crashes += 1
        stage = (
            f"resuming after simulated crash {crashes}"
            f" (the journal stopped at {hooks.crash_after_events} events)"
        )
        hooks = schedule.hooks(points.pop(0) if points else None, fakes)
        try:
            with Engine(path, durability="process", hooks=hooks) as engine:
                engine.resume(run_id, process=process)
        except NonDeterminismError as exc:
            raise ScheduleDiverged(exc, stage, crashes) from exc
        resumes += 1
    with Engine(path, durability="process") as engine:
        trace = build_trace(engine.events(run_id), engine.payload)
    return Execution(schedule, run_id, trace, crashes=crashes, resumes=resumes)


class _ProbeStop(Exception):
    """Fails every dispatch of a probe: it must record a call, never execute one."""


def replayed_call(
    path: str, run_id: str, process: ProcessFn | str, key: str, seq: int
) -> CallRecord | None:
    """What the process does *now* at ``key``, where replay diverged at event ``seq``.

    A ``NonDeterminismError`` knows only the hash of the args replay computed.
    To show them, the run is forked just before the recorded call and the fork
    resumed until it has written exactly one new event after its
    ``execution`` event, which is (nearly always) the process's new call at
    ``key``. Every dispatch of the fork is
    failed by a hook, so no task runs for real.
    """
    probe_id = f"{run_id}-probe-{secrets.token_hex(4)}"
    hooks = Hooks(
        fail=lambda k, t, a: _ProbeStop("probe"),
        crash_after_events=seq + 2,  # the fork's `execution` event, then the call
        clock_ns=lambda: CLOCK_NS,
    )
    try:
        with Engine(path, durability="process", hooks=hooks) as engine:
            engine.fork(run_id, at=seq, new_run_id=probe_id)
            engine.resume(probe_id, process=process)
            trace = build_trace(engine.events(probe_id), engine.payload)
    except (ReplayEngineError, ValueError):
        return None
    return trace.calls.get(key)


def run_schedule(
    process: ProcessFn,
    inputs: Any = None,
    schedule: Schedule | None = None,
    *,
    fakes: FakeTasks | Mapping[str, Any] | None = None,
    run_id: str = DEFAULT_RUN_ID,
    path: str | None = None,
) -> Execution:
    """Execute ``process`` once under ``schedule``: run, crash, resume, until it ends.

    Args:
        process: the process function.
        inputs: its inputs.
        schedule: the world's choices; ``Schedule()`` (the default) is an
            uninterrupted run.
        fakes: tasks to answer instead of executing (see :class:`FakeTasks`).
        run_id: the run id (the same one gives the same ``ctx.random()``).
        path: a journal directory to use and keep (it must not hold
            ``run_id`` yet); by default a temporary one, deleted afterwards.

    Returns:
        The :class:`Execution`: its trace, status, result and crash counts.

    Raises:
        NonDeterminismError: a resume after a simulated crash diverged from
            the journal the process itself had just written.

    .. versionadded:: 0.1
    """
    schedule = schedule or Schedule()
    faked = as_fakes(fakes)
    if faked is not None:
        faked.check_names()
    try:
        if path is not None:
            execution = execute(
                process, inputs, schedule, path, run_id=run_id, fakes=faked
            )
            execution.path = path
            return execution
        with tempfile.TemporaryDirectory(prefix="replay-schedule-") as tmp:
            return execute(process, inputs, schedule, tmp, run_id=run_id, fakes=faked)
    except ScheduleDiverged as diverged:
        diverged.error.add_note(f"while {diverged.stage}, under {schedule!r}")
        raise diverged.error from None
