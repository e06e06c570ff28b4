"""Executing runs: ``run``, ``resume``, ``durable``, and loading process functions."""

from __future__ import annotations

import datetime as _dt
import logging
import os
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import journal_format as jf

from .._run.stats import RunStats
from .._store import cancel as _cancel
from .._store.cancel import ENDED
from .._store.chain import StoredEvent
from .._store.lock import RunLock, hostname
from .._store.payload import encode_or_refuse
from ..errors import JournalCorruptError, NonDeterminismError, ReplayEngineError
from .base import EngineBase, run_sync
from .children import (
    INLINE,
    ChildBridge,
    deliver_if_child,
    end_children_of_timed_out,
)
from .durable import DurableProcess
from .execution_info import MAX_PASSES, execution_event
from .processes import ProcessLike, load_typed
from .results import Deadline, Run, deadline_to_ns, utc

if TYPE_CHECKING:
    from .._run.context import Context
    from .._run.journal import RunJournal

# The runtime (and asyncio with it) is imported by the methods that execute,
# not here: an Engine opened to read a journal never needs it (issue 16).
# Nor ``process_ref`` (``CodeNow`` and the comparison of the code with the
# journal's): only ``run``/``resume`` use it.
ProcessFn = Callable[[Any, "Context"], Coroutine[Any, Any, Any]]
OnProgress = Callable[[RunStats], None]
OnLog = Callable[[str, str, dict[str, Any]], None]

_log = logging.getLogger("replay_engine")


def load_process(ref: str) -> Callable[..., Any]:
    """Import the process function named ``"module:qualname"``, as the user typed it.

    The module is imported as ``python -m`` would, with the current directory
    on ``sys.path``; ``qualname`` may be dotted (``Flows.process``). Use it for
    references you wrote (a command line argument), never for one read from a
    journal: ``resume`` and ``replay`` load a run's recorded process only when
    this user started the run here or allowed it (docs/security.md).

    Raises:
        ProcessImportError: ``ref`` is not ``module:qualname``, the module
            cannot be imported (an ImportError, a SyntaxError, or any error
            raised while it runs), it has no such attribute, or the attribute
            is not callable.
    """
    return load_typed(ref)


class Executing(EngineBase):
    """``Engine``'s methods that execute a run: start it, resume it."""

    def run(
        self,
        process: ProcessFn | str,
        inputs: Any = None,
        *,
        run_id: str | None = None,
        on_progress: OnProgress | None = None,
        on_log: OnLog | None = None,
        deadline: Deadline | None = None,
    ) -> Run:
        """Start a new run of ``process`` and execute it until it ends or waits.

        Args:
            process: ``async def process(inputs, ctx)``, or its
                ``"module:qualname"``.
            inputs: any msgspec-encodable value; the process gets it decoded.
            run_id: the run's id; a fresh one when omitted.
            on_progress: called with live counters while the run works.
            on_log: called with ``(key, message, fields)`` for each new log line.
            deadline: when the run must be over: an aware ``datetime``, or a
                ``timedelta`` or number of seconds from now. Stored with the
                run; whoever executes or wakes it past then ends it
                ``timed_out`` (terminal): an execution stops as on
                :meth:`cancel`, a ``resume``/``iterate`` records it without
                executing, and a waiting run's ``next_due`` includes it.
                Its unfinished child runs are cancelled then, as by ``cancel``.

        The run's process is remembered for this user (outside the journal),
        so a later ``resume``/``replay`` of it needs no ``process=``.

        Raises:
            RunExistsError: ``run_id`` is taken.
            ValueError: ``deadline`` is a naive datetime, or not finite.
            PayloadError: ``inputs`` cannot be encoded (nothing is recorded).
            ProcessImportError: ``process`` cannot be imported, or is not an
                ``async def process(inputs, ctx)`` (nothing is recorded).
        """
        return run_sync(
            self.run_async(
                process,
                inputs,
                run_id=run_id,
                on_progress=on_progress,
                on_log=on_log,
                deadline=deadline,
            )
        )

    async def run_async(
        self,
        process: ProcessFn | str,
        inputs: Any = None,
        *,
        run_id: str | None = None,
        on_progress: OnProgress | None = None,
        on_log: OnLog | None = None,
        deadline: Deadline | None = None,
    ) -> Run:
        """The same as :meth:`run`, for asyncio callers."""
        from .._run import group_commit as _group_commit, process_ref as _process_ref
        from .._run.journal import RunJournal

        deadline_ns = deadline_to_ns(deadline)
        run_id = run_id or _new_run_id()
        try:
            jf.check_run_id(run_id)
        except jf.FormatError as exc:
            raise ReplayEngineError(str(exc)) from None
        label = process if isinstance(process, str) else None
        if isinstance(process, str):
            process = load_process(process)
        ref = _process_ref.reference(process)
        # Before create_run: a non-process must not leave a run behind.
        _process_ref.check_process(process, label or ref)
        inputs_bytes = encode_or_refuse(
            inputs, f"the inputs of run {run_id!r}", "; nothing was recorded"
        )
        address = jf.payload_ref(inputs_bytes)
        from .._run.process_ref import CodeNow  # start-up: see the note below

        code = CodeNow.of(process)
        started = jf.RunStarted(
            process=ref,
            fingerprint=code.fingerprint,
            code=code.code or None,
            inputs=address,
            # The first execution is this one: no `execution` event of its own.
            pid=os.getpid(),
            host=hostname(),
        )
        with RunLock(self.path, run_id):
            # Noted before the run exists (a kill right after its creation
            # must not strand it), but never over the note of a run that does.
            exists = self._store.get_run(run_id) is not None
            note = (
                None if exists else self._processes.starting(run_id, process, started)
            )
            # Shared with the other runs this loop executes (group_commit).
            await _group_commit.create_run(
                self._store,
                run_id,
                started,
                jf.blobs_for(address, inputs_bytes),
                deadline_ns,
            )
            if note is not None:
                self._processes.started(note, self._first(run_id).digest)
            journal = RunJournal(self._store, run_id)
            journal.recorded_events = journal.known_events = 1
            journal.started = started
            decoded = jf.decode_payload(inputs_bytes)
            return await self._execute(
                journal, process, decoded, [], on_progress=on_progress, on_log=on_log
            )

    def resume(
        self,
        run_id: str,
        *,
        process: ProcessFn | str | None = None,
        on_progress: OnProgress | None = None,
        on_log: OnLog | None = None,
        why: str = "resume",
    ) -> Run:
        """Re-execute a run from the start, serving completed effects from its journal.

        A completed run is terminal: its recorded result is returned and
        nothing runs; so is a ``cancelled`` or ``timed_out`` run, returned as
        it is (nothing is executed or written). A failed, waiting or
        interrupted run re-executes with the current code, unless a cancel was
        requested (it is recorded ``cancelled``) or its deadline has passed
        (recorded ``timed_out``): then nothing is executed.

        Which code: ``process`` when given; else the function this engine
        started the run with, one of ``Engine(processes=...)``, or the process
        this user started the run with here (remembered outside the journal).
        A reference found only in the journal is never imported.

        Args:
            run_id: the run.
            process: the process function (or a ``module:qualname`` string you
                wrote) to execute the run with: needed for a run not started
                here (a journal from elsewhere), or to run new code under it.
            on_progress: as for :meth:`run`.
            on_log: as for :meth:`run`.
            why: why the run is executed (``resume``, ``recovery``, ``wake``,
                ``fork``, ``iterate``, ``start``), recorded in the
                ``execution`` event that opens what this execution writes.

        A post (a result, a signal, an approval) that lands while the run
        executes is seen: the execution does not stop ``waiting`` for an answer
        the journal already has, it executes the run again at once.

        Raises:
            ValueError: ``why`` is not one of the above.
            RunNotFoundError: no such run.
            RunLockedError: another process is executing it.
            ProcessImportError: no ``process`` and the run's recorded process is
                not known here (nothing was imported), or it cannot be imported
                or is not ``async def process(inputs, ctx)``.
            NonDeterminismError: the process diverged from the journal; nothing
                is recorded for the divergence and the run can be resumed once
                the code is fixed.
        """
        return run_sync(
            self.resume_async(
                run_id,
                process=process,
                on_progress=on_progress,
                on_log=on_log,
                why=why,
            )
        )

    async def resume_async(
        self,
        run_id: str,
        *,
        process: ProcessFn | str | None = None,
        on_progress: OnProgress | None = None,
        on_log: OnLog | None = None,
        park_timers: bool = False,
        why: str = "resume",
    ) -> Run:
        """The same as :meth:`resume`, for asyncio callers."""
        from .._run.journal import RunJournal

        record = self._store.require_run(run_id)
        starting = why in ("resume", "start")
        if starting and record.parent and record.events == record.fork_at:
            why = "fork"  # the first execution of a fork
        execution = execution_event(why)
        if record.status == "completed":
            return Run(
                run_id=run_id, status="completed", result=self._recorded_result(record)
            )
        if record.status in ENDED:
            return Run(run_id=run_id, status=record.status)
        with RunLock(self.path, run_id):
            # Under the lock: a cancel or deadline may have come meanwhile.
            locked = self._store.require_run(run_id)
            now = locked.status
            if _cancel.due_end(locked) is not None:
                now = _cancel.end_if_due(self._store, run_id) or now
                if now == "timed_out":
                    end_children_of_timed_out(self, run_id)
            if now in ENDED and now != "completed":
                return Run(run_id=run_id, status=now)
            journal = RunJournal(self._store, run_id)
            journal.load()
            started = journal.started
            if started is None:
                raise JournalCorruptError(
                    f"run {run_id!r} has no run_started event at seq 0",
                    run_id=run_id,
                    seq=0,
                )
            if isinstance(journal.last_event, jf.RunCompleted):
                return Run(
                    run_id=run_id,
                    status="completed",
                    result=self._recorded_result(record),
                )
            fn = self._processes.resolve(run_id, self._first(run_id), process)
            if process is not None:
                self._processes.used(run_id, fn)
            from .._run.process_ref import (
                CodeNow,
                change_warnings,
                code_changed_first,
                describe_change,
                last_recorded,
            )

            code = CodeNow.of(fn)
            recorded = last_recorded(self._store, run_id, locked, started)
            change = describe_change(fn, code, recorded)
            warnings = change_warnings(run_id, started, fn, change)
            inputs = self.payload(started.inputs, run_id=run_id, seq=0)
            journal.loaded_status = record.status
            journal.mark_running = True
            journal.execution = code.stamp(execution)
            try:
                return await self._execute(
                    journal,
                    fn,
                    inputs,
                    warnings,
                    on_progress=on_progress,
                    on_log=on_log,
                    park_timers=park_timers,
                )
            except NonDeterminismError as exc:
                if not change:
                    raise
                raise code_changed_first(exc, change) from None

    def process_for(
        self, run_id: str, process: ProcessLike | None = None
    ) -> Callable[..., Any]:
        """The process ``resume``/``replay`` of ``run_id`` would execute.

        ``process`` (a function, or a ``module:qualname`` you wrote) wins; see
        :meth:`resume` for the rest. Nothing named only by the journal is
        imported.

        Raises:
            RunNotFoundError: no such run.
            ProcessImportError: as for :meth:`resume`.
        """
        self._store.require_run(run_id)
        return self._processes.resolve(run_id, self._first(run_id), process)

    def _first(self, run_id: str) -> StoredEvent:
        """The run's first event: what a remembered run is matched against."""
        first = self._store.read_events(run_id, 0, 1)
        if not first:
            raise JournalCorruptError(
                f"run {run_id!r} has no event at seq 0", run_id=run_id, seq=0
            )
        return first[0]

    async def _execute(
        self,
        journal: RunJournal,
        process: ProcessFn,
        inputs: Any,
        warnings: list[str],
        *,
        on_progress: OnProgress | None,
        on_log: OnLog | None,
        park_timers: bool = False,
    ) -> Run:
        # The stats of the latest pass (they add up the earlier ones), for
        # Engine.statistics(): what this engine did, however the call ended.
        latest: list[RunStats] = []
        try:
            return await self._passes(
                journal,
                process,
                inputs,
                warnings,
                latest,
                on_progress=on_progress,
                on_log=on_log,
                park_timers=park_timers,
            )
        finally:
            if latest:
                self._counters.add(latest[-1])

    async def _passes(
        self,
        journal: RunJournal,
        process: ProcessFn,
        inputs: Any,
        warnings: list[str],
        latest: list[RunStats],
        *,
        on_progress: OnProgress | None,
        on_log: OnLog | None,
        park_timers: bool,
    ) -> Run:
        from .._run.runtime import Outcome, Runtime
        from .._run.settle import AGAIN

        why = "start" if journal.execution is None else journal.execution.why
        carry: RunStats | None = None
        for passes in range(1, MAX_PASSES + 1):
            journal.watch_posts = passes < MAX_PASSES
            runtime = Runtime(
                journal,
                journal.run_id,
                executors=self._executors,
                max_in_flight=self._slots,
                on_progress=on_progress,
                on_log=on_log,
                park_timers=park_timers,
                hooks=self._hooks,
                stopper=self._stopper,
                carry=carry,
                tracing=self._tracing,
                children=ChildBridge(self),
            )
            latest.append(runtime.stats)
            outcome: Outcome
            if self._tracing is None:
                outcome = await runtime.execute(process, inputs)
            else:
                outcome = await self._tracing.execution(
                    journal.run_id, why, runtime.execute(process, inputs)
                )
            if outcome.status != AGAIN:
                break
            # A post landed while it ran: execute again, at once, with it.
            carry = runtime.stats
            journal = self._reloaded(journal)
        if outcome.status in ("waiting", "failed"):
            # A cancel requested (or the deadline passed) just as the process
            # stopped: it ends the run now, not at the next resume.
            ended = _cancel.end_if_due(self._store, journal.run_id)
            if ended is not None:
                outcome = Outcome(status=ended)
        if outcome.status == "timed_out":  # recorded by this execution, just now
            end_children_of_timed_out(self, journal.run_id)
        if outcome.status in jf.FINISHED_STATUSES and not INLINE.get():
            # A child that ended on its own (a worker, a resume of it): tell
            # its parent; a parent executing it inline does that itself.
            deliver_if_child(self._store, journal.run_id)
        due = outcome.next_due_ns
        return Run(
            run_id=journal.run_id,
            status=outcome.status,
            result=outcome.result,
            error=outcome.error,
            pending=outcome.pending,
            stats=runtime.stats,
            warnings=warnings,
            next_due=None if due is None else utc(due),
        )

    def _reloaded(self, old: RunJournal) -> RunJournal:
        """The run's journal loaded afresh, for the next pass of one execution."""
        from .._run.journal import RunJournal

        journal = RunJournal(self._store, old.run_id)
        journal.loaded_status = self._store.require_run(old.run_id).status
        journal.load()
        journal.mark_running = True
        journal.execution = old.execution  # not written yet, if still set
        return journal

    def request_stop(
        self, reason: str = "a stop request", *, grace: float = 10.0
    ) -> None:
        """Ask the runs this engine executes to stop, as on SIGTERM.

        Nothing new is dispatched; effects in flight get ``grace`` seconds to
        finish and what completed is committed; then ``run``/``resume``/
        ``iterate`` raise :class:`RunInterrupted` (the run stays ``running``,
        not failed, and its lock is released). A second call stops at once.
        A run started after the request stops before dispatching anything.
        Safe to call from a signal handler or another thread.

        Args:
            reason: what asked for the stop (named in ``RunInterrupted``).
            grace: seconds effects in flight may take to finish.

        Raises:
            ValueError: ``grace`` is negative, infinite or NaN.
        """
        self._stopper.request(reason, grace)

    def durable(self, fn: ProcessFn) -> DurableProcess:
        """Make an async function a durable process of this engine, in one line.

        Example::

            @engine.durable
            async def pipeline(inputs, ctx): ...

            run = pipeline.start({"feature": "x"}, run_id="r1")  # or resumes r1
        """
        return DurableProcess(self, fn)


def _new_run_id() -> str:
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%d-%H%M%S")
    return f"run-{stamp}-{os.urandom(3).hex()}"
