"""The worker: recovers interrupted runs, wakes waiting ones, starts queued ones.

How it finds work without scanning every run: it polls the journal's change
counter (LMDB's last committed transaction id, a few microseconds) every
``poll_interval`` and, when it moved, when a timer or a recovery grace falls
due, or every ``full_look_interval`` anyway, reads the ``active`` index (the
queued, running and waiting runs) with their records in one read transaction
(:mod:`.worker_look` decides what to do with them).

Why asyncio tasks in the caller's process rather than threads or a fork per
run: the engine's API is async already, every execution's sync effects run in
the engine's executor (threads or processes) anyway, and one event loop shares
one LMDB handle, one ``Stopper`` (so a SIGTERM drains every execution with one
``request_stop``) and no locks of our own. What this costs: a process function
that blocks the loop (CPU work in the ``async def`` itself, not in a task)
delays the others; such work belongs in a ``@task``.

Who executes a run is decided by the run lock: an execution takes it (in
``resume``), and a worker that finds it held skips the run quietly. Queued
runs are claimed in one LMDB write transaction that checks the queue's limits
against every worker's runs (``Store.claim_queued``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._run import process_ref as _ref
from .._store.active import Limits
from ..errors import (
    ReplayEngineError,
    RunInterrupted,
    RunLockedError,
)
from .effects import ExternalEffects
from .processes import ProcessLike, load_typed
from .worker_look import Action, Look, plan, unheld

_log = logging.getLogger("replay_engine.worker")


@dataclass(frozen=True)
class QueueLimits:
    """A queue's limits, held across every worker on the journal.

    Args:
        concurrency: at most this many runs of the queue started and not
            finished (running or waiting) at once; None: no limit.
        rate: at most this many starts per second (``0.5``: one every two
            seconds); None: no limit.

    Raises:
        ValueError: a limit that is not a positive number.
    """

    concurrency: int | None = None
    rate: float | None = None

    def __post_init__(self) -> None:
        c = self.concurrency
        if c is not None and (isinstance(c, bool) or not isinstance(c, int) or c < 1):
            raise ValueError(f"concurrency must be an integer >= 1, not {c!r}")
        r = self.rate
        if r is not None and (
            isinstance(r, bool)
            or not isinstance(r, int | float)
            or not math.isfinite(r)
            or r <= 0
        ):
            raise ValueError(f"rate must be a positive number per second, not {r!r}")


@dataclass(frozen=True)
class WorkerEvent:
    """Something a worker did, for ``on_event`` (and the CLI's lines).

    ``kind`` is ``started`` (``why``: ``start``, ``recovery`` or ``wake``),
    ``finished`` (``status``: what the execution left the run as, or
    ``interrupted`` when a stop cut it short), ``skipped`` (a run of a process
    this worker may not run, reported once) or ``error`` (``detail`` says
    what; the run is left as it was and retried later).
    """

    kind: str
    run_id: str
    why: str | None = None
    status: str | None = None
    detail: str | None = None


@dataclass
class WorkerSummary:
    """Counts of what a worker did, for its closing line."""

    started: int = 0
    recovered: int = 0
    woken: int = 0
    finished: dict[str, int] = field(default_factory=dict)
    errors: int = 0

    def line(self) -> str:
        """One line: ``started 3, recovered 1, woken 2; completed 5, waiting 1``."""
        done = ", ".join(f"{k} {v}" for k, v in sorted(self.finished.items()))
        return (
            f"started {self.started}, recovered {self.recovered}, woken"
            f" {self.woken}; {done or 'none finished'}; errors {self.errors}"
        )


class Worker:
    """Recovers, wakes and starts the runs of the allowed processes on a journal.

    Made by :meth:`Engine.worker`. ``run()`` blocks until :meth:`stop`;
    ``async with worker:`` runs it in the background of the caller's loop and
    stops and drains it on exit. Stopping a worker asks every execution of its
    engine to stop (``Engine.request_stop``).

    Args:
        engine: the engine whose journal it works on.
        processes: the allow-list (functions or ``"module:qualname"``).
        queues: queue name → :class:`QueueLimits` (``""``: runs without one).
        max_runs: executions at once in this worker.
        recovery_grace: seconds a ``running`` run nobody holds must have gone
            without an update before it is recovered (a worker that just
            claimed it has not taken its lock yet).
        stop_grace: seconds effects in flight get when the worker stops.
        poll_interval: seconds between looks at the change counter.
        full_look_interval: seconds between looks even when nothing changed.
        retry_after: seconds before a run whose execution changed nothing (or
            failed to start) is tried again with nothing new in its journal.
        on_event: called with each :class:`WorkerEvent` (in the loop's thread).
    """

    def __init__(
        self,
        engine: ExternalEffects,
        processes: Iterable[ProcessLike],
        queues: Mapping[str, QueueLimits] | None = None,
        *,
        max_runs: int = 32,
        recovery_grace: float = 2.0,
        stop_grace: float = 10.0,
        poll_interval: float = 0.015,
        full_look_interval: float = 1.0,
        retry_after: float = 5.0,
        on_event: Callable[[WorkerEvent], None] | None = None,
    ) -> None:
        if isinstance(max_runs, bool) or not isinstance(max_runs, int) or max_runs < 1:
            raise ValueError(f"max_runs must be an integer >= 1, not {max_runs!r}")
        for name, value in (
            ("recovery_grace", recovery_grace),
            ("stop_grace", stop_grace),
            ("retry_after", retry_after),
        ):
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a number of seconds >= 0")
        for name, value in (
            ("poll_interval", poll_interval),
            ("full_look_interval", full_look_interval),
        ):
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a number of seconds > 0")
        self.engine = engine
        self._store = engine._store
        self.allowed: dict[str, Callable[..., Any]] = {}
        for item in processes:
            fn = load_typed(item) if isinstance(item, str) else item
            label = item if isinstance(item, str) else _ref.reference(fn)
            _ref.check_process(fn, label)
            self.allowed[_ref.reference(fn)] = fn
            if isinstance(item, str):
                self.allowed.setdefault(item, fn)
        if not self.allowed:
            raise ValueError("a worker needs at least one process it may run")
        self.limits: dict[str | None, Limits] = {}
        for name, limits in (queues or {}).items():
            if not isinstance(limits, QueueLimits):
                raise TypeError(f"queues[{name!r}] is not a QueueLimits")
            self.limits[name or None] = Limits(limits.concurrency, limits.rate)
        self.max_runs = max_runs
        self.recovery_grace = recovery_grace
        self.stop_grace = stop_grace
        self.poll_interval = poll_interval
        self.full_look_interval = full_look_interval
        self.retry_after = retry_after
        self.on_event = on_event
        self.summary = WorkerSummary()
        self._executing: dict[str, asyncio.Task[None]] = {}
        self._tried: dict[str, tuple[int, float, int]] = {}
        self._stop_requested = False
        self._refused: set[str] = set()
        self._stop = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._nudge: asyncio.Event | None = None
        self._task: asyncio.Task[WorkerSummary] | None = None

    # -- running -------------------------------------------------------------

    def run(self) -> WorkerSummary:
        """Work until :meth:`stop` is called (from a signal handler or a thread)."""
        return asyncio.run(self.run_async())

    async def run_async(self) -> WorkerSummary:
        """The same as :meth:`run`, in the caller's event loop."""
        self._loop = asyncio.get_running_loop()
        self._nudge = asyncio.Event()
        look = Look()
        last_counter = -1
        next_full = 0.0
        try:
            while not self._stop:
                counter = self._store.change_counter()
                now = time.monotonic()
                if (
                    counter != last_counter
                    or now >= next_full
                    or time.time_ns() >= look.due_ns
                ):
                    # Read before the look: a commit during it triggers another.
                    last_counter = counter
                    next_full = now + self.full_look_interval
                    look = self._look()
                self._nudge.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._nudge.wait(), self.poll_interval)
        finally:
            await self._drain()
        return self.summary

    def stop(self, grace: float | None = None) -> None:
        """Stop taking runs and ask running executions to stop (thread-safe).

        Effects in flight get ``grace`` seconds (default ``stop_grace``);
        a second call stops them at once. ``run()`` returns once every
        execution has committed and released its run.
        """
        self._stop = True
        if self._executing or self._stop_requested:
            # The first request drains with a grace; a second stops at once.
            self._stop_requested = True
            self.engine.request_stop(
                "the worker is stopping",
                grace=self.stop_grace if grace is None else grace,
            )
        loop, nudge = self._loop, self._nudge
        if loop is not None and nudge is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(nudge.set)

    async def __aenter__(self) -> Worker:
        self._task = asyncio.create_task(self.run_async())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop()
        if self._task is not None:
            await self._task

    @property
    def executing(self) -> list[str]:
        """The runs this worker is executing now."""
        return sorted(self._executing)

    # -- one look ------------------------------------------------------------

    def _look(self) -> Look:
        try:
            allowed = self.allowed
            runs = self._store.active_runs(
                queued_heads=max(0, self.max_runs - len(self._executing)),
                accept=lambda record: record.process in allowed,
            )
        except ReplayEngineError as exc:
            self._error("", f"reading the active runs failed: {exc}")
            return Look(due_ns=time.time_ns() + int(self.retry_after * 1e9))
        look = plan(
            runs,
            allowed=self.allowed,
            executing=self._executing.keys(),
            tried=self._tried,
            now_ns=time.time_ns(),
            now_mono=time.monotonic(),
            grace_ns=int(self.recovery_grace * 1e9),
            retry_after=self.retry_after,
            path=self.engine.path,
        )
        for run_id, process in look.refused:
            if run_id not in self._refused:
                self._refused.add(run_id)
                _log.warning(
                    "run %r names process %r, which this worker may not run;"
                    " it is left alone",
                    run_id,
                    process,
                )
                self._emit(WorkerEvent("skipped", run_id, detail=process))
        for action in look.actions:
            if len(self._executing) >= self.max_runs:
                break
            self._launch(action)
        for queue, heads in look.queued.items():
            limits = self.limits.get(queue, Limits())
            for record in heads:
                if len(self._executing) >= self.max_runs:
                    return look
                try:
                    outcome = self._store.claim_queued(record.run_id, limits)
                except ReplayEngineError as exc:
                    self._error(record.run_id, f"claiming it failed: {exc}")
                    break
                if outcome == "limited":
                    if limits.rate is not None:  # look again when a start frees
                        look.due_ns = min(look.due_ns, time.time_ns() + 20_000_000)
                    break
                if outcome == "claimed":
                    fn = self.allowed[record.process]
                    self._launch(Action(record.run_id, fn, "start", record.events))
        return look

    def _launch(self, action: Action) -> None:
        self._executing[action.run_id] = asyncio.create_task(self._execute(action))

    async def _execute(self, action: Action) -> None:
        run_id, why = action.run_id, action.why
        status: str | None = None
        try:
            if why == "wake" and not unheld(self.engine.path, run_id):
                # Another worker (or an iterate) is on it already: leave it
                # quietly; a wake it misses moves the change counter again.
                return
            self._emit(WorkerEvent("started", run_id, why=why))
            counter = {"start": "started", "recovery": "recovered", "wake": "woken"}
            name = counter[why]
            setattr(self.summary, name, getattr(self.summary, name) + 1)
            run = await self.engine.resume_async(
                run_id, process=action.process, park_timers=True, why=why
            )
            status = run.status
        except RunLockedError:
            status = "skipped: executed elsewhere"
        except RunInterrupted:
            status = "interrupted"
        except (ReplayEngineError, Exception) as exc:
            self._error(run_id, f"{type(exc).__name__}: {exc}")
        finally:
            self._executing.pop(run_id, None)
            record = None
            with contextlib.suppress(ReplayEngineError):
                record = self._store.get_run(run_id)
            events = record.events if record is not None else action.events
            self._tried[run_id] = (events, time.monotonic(), time.time_ns())
            if status is not None:
                self.summary.finished[status] = self.summary.finished.get(status, 0) + 1
                self._emit(WorkerEvent("finished", run_id, why=why, status=status))
            if self._nudge is not None:
                self._nudge.set()

    async def _drain(self) -> None:
        tasks = list(self._executing.values())
        if not tasks:
            return
        if not self._stop_requested:  # stopped another way (a cancelled loop)
            self._stop_requested = True
            self.engine.request_stop("the worker is stopping", grace=self.stop_grace)
        # Bounded: each execution stops within its grace, then commits.
        await asyncio.wait(tasks, timeout=self.stop_grace + 30.0)
        if not self._executing:
            # Every execution it asked to stop has stopped: an embedding
            # caller's engine runs normally again.
            self.engine._stopper.reset()

    def _error(self, run_id: str, detail: str) -> None:
        self.summary.errors += 1
        _log.warning("worker: run %r: %s", run_id, detail)
        self._emit(WorkerEvent("error", run_id, detail=detail))

    def _emit(self, event: WorkerEvent) -> None:
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:  # a reporting callback must not stop the worker
                _log.exception("worker: on_event raised")
