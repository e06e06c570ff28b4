"""Settling an execution: stop it, and record how it ended.

An execution ends in one of four ways:

* the process returns: ``RunCompleted`` is recorded (the run is terminal);
* the process raises: ``RunFailed`` is recorded (a later resume re-executes);
* the process diverges from its journal: ``NonDeterminismError`` is raised and
  nothing is recorded for the divergence, so the run can be resumed once the
  code is fixed (the run pauses rather than fails);
* nothing can progress but external effects: ``RunWaiting`` is recorded,
  unless someone else appended to the run while it executed (a post, a
  signal, an approval): then nothing is recorded and the outcome is
  ``again``, so the caller executes the run once more, at once, and sees it;
* a fault ends it at once (``settle_fault``): a commit failed (nothing more
  is written; the run is resumed once the cause is fixed), or a task raised
  an interrupt (``KeyboardInterrupt``, ``SystemExit``): attempts still running
  may finish and be recorded, then the interrupt goes on up. Neither is
  recorded as the run's or a task's failure.

An execution is also ended from outside (``HaltWatch``, at the end of this
module): a cancel request, or the run's deadline. ``Engine.cancel`` of a run
executing here or in another process appends a ``cancel_requested`` event and
marks the run record (``_store.cancel``); the run's deadline is in its record
too. So an execution learns of either by reading one record, every ``POLL``
seconds (a timer at the deadline too): never a read per event, and nothing on
the replay or dispatch paths. When one is due, the execution stops as a signal
stops it (``stopping``), but without a grace period: the dispatcher closes
(nothing new starts; async attempts are cancelled), the process is unwound,
and attempts still running in threads or processes, which nobody can
interrupt, are abandoned: their futures are cancelled, so a late result is
dropped, never recorded. What completed is committed, then the end
(``run_cancelled`` with every effect left without an outcome, or
``run_timed_out``) in one transaction. (One module with settling: a first
resume imports both, and each module costs an import, issue 17.)

A time-travel replay (``frozen``) records nothing: it reports ``frontier``
where it had to stop, except against a complete history, which it must
reproduce exactly (``history``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from types import CodeType
from typing import Any

import journal_format as jf

from .._store import cancel as _cancel
from .._store.store import Store
from ..errors import (
    NonDeterminismError,
    PayloadError,
    ReplayEngineError,
    TaskNotAwaited,
)
from . import jobs
from .decisions import describe_entry, divergence
from .state import ExecutionState, Stopped


class Outcome:
    """How an execution ended (a plain class: see ``history.Ending``)."""

    __slots__ = ("error", "next_due_ns", "pending", "result", "status")

    def __init__(
        self,
        status: str,
        result: Any = None,
        error: jf.ErrorInfo | None = None,
        pending: list[str] | None = None,
        next_due_ns: int | None = None,
    ) -> None:
        self.status, self.result, self.error = status, result, error
        self.pending, self.next_due_ns = pending or [], next_due_ns

    def __repr__(self) -> str:
        return f"Outcome(status={self.status!r}, result={self.result!r})"


def error_info(exc: BaseException) -> jf.ErrorInfo:
    """The recorded form of an exception."""
    _, (name, message, tb, _names) = jobs.error_outcome(exc)
    return jf.ErrorInfo(type=name, message=message, traceback=tb)


async def stop(state: ExecutionState, main: asyncio.Task[Any]) -> None:
    """Stop the execution: close dispatch, cancel the waits, unwind the process."""
    state.stopping = True
    state.dispatcher.close()
    for future in state.external.values():
        if not future.done():
            future.cancel()
    if main.done():
        if not main.cancelled():
            main.exception()  # retrieved: the outcome is being settled elsewhere
    else:
        main.cancel()
        # Unwinding a cancelled process: whatever it raises now is moot.
        with contextlib.suppress(BaseException):
            await main
    # Give cancelled async tasks one iteration to unwind.
    await asyncio.sleep(0)


async def settle_waiting(state: ExecutionState, main: asyncio.Task[Any]) -> Outcome:
    """The process is blocked on external effects: record ``RunWaiting``."""
    pending = sorted(k for k in state.external if k not in state.parked_timers)
    # The run's deadline too: whoever wakes the run then times it out.
    dues = [*state.due.values(), *filter(None, [state.run_deadline_ns])]
    next_due = min(dues) if dues else None
    await stop(state, main)
    if state.frozen:
        if state.journal.diverged is not None:  # caught by the process, still so
            raise state.journal.diverged
        return Outcome(
            status="frontier", pending=[jf.key_bytes_to_text(k) for k in pending]
        )
    journal = state.journal
    waiting = jf.RunWaiting(pending=pending, next_due_ns=next_due)
    # An iterate that changed nothing leaves the journal as it was.
    if waiting != journal.last_event or journal.has_pending or journal.events_written:
        journal.record(waiting)
    if not finish_stats(state, status="waiting", verdict=True):
        # A post landed while this execution ran: it is not waiting for it.
        return Outcome(status=AGAIN)
    return Outcome(
        status="waiting",
        pending=[jf.key_bytes_to_text(k) for k in pending],
        next_due_ns=next_due,
    )


async def settle_finished(
    state: ExecutionState, main: asyncio.Task[Any], process: object
) -> Outcome:
    """The process returned or raised: record its result or failure.

    Raises what pauses the run instead of ending it: a divergence (also the
    "fewer calls" one found here), a lost executor, a stop.
    """
    state.dispatcher.close()
    exc = main.exception() if not main.cancelled() else asyncio.CancelledError()
    if state.frozen:
        return _settle_frozen(state, main, exc, process)
    # A divergence pauses the run: it keeps the status it had (a waiting run
    # must still be found waiting), so it can be resumed once fixed.
    kept = state.journal.loaded_status or None
    if state.journal.diverged is not None:
        finish_stats(state, status=kept)
        raise state.journal.diverged
    if isinstance(exc, NonDeterminismError):
        finish_stats(state, status=kept)
        raise exc
    if state.executor_lost is not None:
        # The executor went away: a pause, not a failure. The interrupted
        # effects have requests and no outcome; a resume re-dispatches them.
        finish_stats(state, status=None)
        raise state.executor_lost
    journal = state.journal
    unvisited = journal.unvisited()
    # A process that raised before reaching its recorded calls failed; that
    # is its outcome, not a divergence (only one that returns is "short").
    if unvisited and exc is None:
        finish_stats(state, status=kept)
        raise _fewer_calls(state, unvisited, process)
    dropped = _never_awaited(state)
    if dropped is not None and exc is None:
        exc = dropped
    if exc is None:
        try:
            data = _encode_result(main.result())
        except PayloadError as err:
            exc = err
        else:
            ref = jf.payload_ref(data)
            journal.record(jf.RunCompleted(result=ref), jf.blobs_for(ref, data))
            await finish_shared(state, "completed")
            return Outcome(status="completed", result=jf.decode_payload(data))
    if isinstance(exc, Stopped | asyncio.CancelledError) or not isinstance(
        exc, Exception
    ):
        finish_stats(state, status=None)
        raise exc
    error = error_info(exc)
    last = journal.last_event
    already = (
        isinstance(last, jf.RunFailed)
        and last.error.type == error.type
        and (last.error.message == error.message)
        and not journal.has_pending
    )
    if not already:
        journal.record(jf.RunFailed(error=error))
    await finish_shared(state, "failed")
    return Outcome(status="failed", error=error)


def _settle_frozen(
    state: ExecutionState,
    main: asyncio.Task[Any],
    exc: BaseException | None,
    process: object,
) -> Outcome:
    """A time-travel replay ended: as ``resume`` would judge it, nothing recorded.

    A process that returns must have made every recorded call of its prefix;
    against a complete history it must also end as recorded (``history``).
    """
    from . import history  # time travel only: not imported by a resume

    journal = state.journal
    if journal.diverged is not None:
        raise journal.diverged
    if isinstance(exc, NonDeterminismError):
        raise exc
    if isinstance(exc, Stopped):
        return Outcome(status="frontier")
    if exc is not None and not isinstance(exc, Exception):
        raise exc
    if exc is None:
        unvisited = journal.unvisited()
        if unvisited:
            raise journal.remember(_fewer_calls(state, unvisited, process))
        try:
            data = _encode_result(main.result())
        except PayloadError as err:
            exc = err
        else:
            history.check_outcome(journal, data, None, _end_of(process))
            return Outcome(status="completed", result=main.result())
    error = error_info(exc)
    history.check_outcome(journal, None, error, _end_of(process))
    return Outcome(status="failed", error=error)


def _encode_result(result: Any) -> bytes:
    """The process's result as recorded, or the PayloadError its run fails with."""
    try:
        return jf.encode_payload(result)
    except jf.FormatError as err:
        raise PayloadError(f"the process's result cannot be encoded: {err}") from None


def _fewer_calls(
    state: ExecutionState,
    unvisited: list[tuple[bytes, jf.CallEntry]],
    process: object,
) -> NonDeterminismError:
    """The divergence of a process that returned without its recorded calls."""
    key, entry = unvisited[0]
    return divergence(
        state.run_id,
        key,
        entry.seq,
        recorded=f"{describe_entry(entry)} and {len(unvisited) - 1} more"
        " recorded calls",
        replayed="the process finished without making these calls",
        headline="the journal has calls this execution never made (fewer calls)",
        site=_end_of(process),
    )


DRAIN_SECONDS = 10.0
"""After an interrupt, how long attempts already running may take to finish
(and be recorded) before they are abandoned to be dispatched again."""


async def settle_fault(state: ExecutionState, main: asyncio.Task[Any]) -> None:
    """End the execution with ``state.fault``, which is raised from here.

    A broken journal (a commit failed) takes nothing more: the attempts in
    flight are abandoned, and what was committed stands, status included. An
    interrupt lets the attempts already running finish (for a while), so that
    one that returned is recorded as completed, and commits that.
    """
    fault = state.fault
    assert fault is not None
    state.stopping = True
    if state.journal.broken is None:
        await state.dispatcher.drain(DRAIN_SECONDS)
        # One more iteration: the effects just answered record their outcome.
        await asyncio.sleep(0)
    await stop(state, main)
    if state.journal.broken is None:
        with contextlib.suppress(ReplayEngineError):  # the fault is the news
            finish_stats(state, status=None)
    raise fault


AGAIN = "again"
"""The outcome of an execution to repeat at once (see ``settle_waiting``)."""


def finish_stats(
    state: ExecutionState, status: str | None, *, verdict: bool = False
) -> bool:
    """Make the final commit (with the run's new status) and fill in the stats.

    The stats add up every pass of one ``run``/``resume`` call (``state.carry``):
    an effect a pass dispatched is replayed by the next, and counts once.
    With ``verdict`` (the commit that records ``run_waiting``), returns False
    when it was not recorded because the run moved on meanwhile
    (``RunJournal.flush`` ``if_unmoved``).
    """
    recorded = state.journal.flush(
        status=status,
        counters=_add_carry(state),
        # A waiting run will be resumed: spare the next resume (an iterate,
        # typically) reading every event again.
        checkpoint=status == "waiting",
        if_unmoved=verdict,
    )
    _fill_stats(state)
    return recorded


async def finish_shared(state: ExecutionState, status: str) -> None:
    """:func:`finish_stats` for a run that ends, its commit shared if worth it.

    With other runs executing on this loop (``group_commit``), the final
    commit joins theirs: one fsync for many runs' ends. The run's outcome is
    returned only once it is durable, as with its own commit.
    """
    pump = state.dispatcher.shared
    if not pump.worth_sharing():
        finish_stats(state, status)
        return
    journal = state.journal
    counters = _add_carry(state)
    item = journal.take_shared(status, counters)
    if item is None:  # nothing buffered, or a case flush handles itself
        journal.flush(status=status, counters=counters)
    else:
        try:
            result = await pump.commit(state.loop, item)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            error = journal.shared_failed(exc)
            if error is exc:
                raise
            raise error from exc
        journal.shared_done(item, result)
    _fill_stats(state)


def _add_carry(state: ExecutionState) -> tuple[int, int]:
    """Count the earlier passes in (once); the counters the final commit records."""
    stats, carry = state.stats, state.carry
    if carry is not None:
        stats.replayed = max(0, stats.replayed - carry.dispatched)
        stats.dispatched += carry.dispatched
        stats.redispatched += carry.redispatched
    return (stats.dispatched, stats.replayed)


def _fill_stats(state: ExecutionState) -> None:
    """The stats of a finished execution, from its journal (and earlier passes)."""
    journal, stats, carry = state.journal, state.stats, state.carry
    stats.events_written = journal.events_written
    stats.commits = journal.commits
    if carry is not None:
        stats.events_written += carry.events_written
        stats.commits += carry.commits
    stats.in_flight = 0


def _end_of(process: object) -> str:
    """Where the process that stopped short is defined: ``file:line (end of f)``."""
    code = getattr(process, "__code__", None)
    if code is None:
        return "<end of process>"
    name = getattr(process, "__qualname__", "process")
    return f"{code.co_filename}:{code.co_firstlineno} (the end of {name})"


def _never_awaited(state: ExecutionState) -> TaskNotAwaited | None:
    """The live ``ctx.task`` calls the process made and never awaited, if any.

    Their coroutines are closed (their effects never ran; nothing was
    recorded for them), so Python does not also warn about them.
    """
    left = state.unawaited
    if not left:
        return None
    # A closed coroutine was disposed of on purpose (parallel.all closes the
    # awaitables it refuses with ThunkRequired): not a silent drop.
    calls = tuple(
        (jf.key_bytes_to_text(key), name, _where(site))
        for key, (coro, name, site) in sorted(left.items())
        if coro.cr_frame is not None
    )
    for coro, _name, _site in left.values():
        coro.close()
    left.clear()
    if not calls:
        return None
    where = "; ".join(
        f"ctx.task({name}) at {site} (key {key})" for key, name, site in calls
    )
    return TaskNotAwaited(
        f"run {state.run_id!r}: the process returned without awaiting {where}:"
        " its effect never ran and nothing was recorded for it. Write `await"
        " ctx.task(...)`, or hand a thunk (`lambda: ctx.task(...)`) to"
        " ctx.parallel.all/map.",
        run_id=state.run_id,
        calls=calls,
    )


def _where(site: tuple[CodeType, int] | None) -> str:
    """``file:line`` of an instruction (``Runtime._handle`` keeps code and offset)."""
    if site is None:
        return "<unknown>"
    code, offset = site
    line = next((n for start, end, n in code.co_lines() if start <= offset < end), None)
    return f"{code.co_filename}:{line if line is not None else code.co_firstlineno}"


POLL = 0.15
"""Seconds between looks at the run record: a cancel is seen within this
(plus the time to unwind), at the cost of one LMDB read per look."""


class HaltWatch:
    """Watches one execution's run record for a cancel request or the deadline.

    ``done`` resolves with ``"cancelled"`` or ``"timed_out"`` when the
    execution must end so.
    """

    def __init__(self, state: ExecutionState, store: Store) -> None:
        self.state = state
        self.store = store
        loop = state.loop
        self.done: asyncio.Future[str] = loop.create_future()
        self._at_deadline: asyncio.TimerHandle | None = None
        record = store.get_run(state.run_id)
        deadline = None if record is None else record.deadline_ns
        state.run_deadline_ns = deadline
        if record is not None:
            self._look(record)
        if deadline is not None and not self.done.done():
            delay = max(0.0, (deadline - time.time_ns()) / 1e9)
            self._at_deadline = loop.call_later(delay, self._poll, False)
        # One handle at a time: a run may execute for days.
        self._next: asyncio.TimerHandle = loop.call_later(POLL, self._poll, True)

    def _look(self, record: jf.RunRecord) -> None:
        end = _cancel.due_end(record)
        if end is not None and not self.done.done():
            self.done.set_result(end)

    def _poll(self, again: bool) -> None:
        if self.done.done():
            return
        try:
            record = self.store.get_run(self.state.run_id)
        except BaseException as exc:  # a damaged record: end the run with it
            self.state.fail(exc)
            return
        if record is not None:
            self._look(record)
        if again and not self.done.done():
            self._next = self.state.loop.call_later(POLL, self._poll, True)

    def close(self) -> None:
        """Stop watching (the execution ended)."""
        self._next.cancel()
        if self._at_deadline is not None:
            self._at_deadline.cancel()
        if not self.done.done():
            self.done.cancel()

    def halted(self, main: asyncio.Task[Any]) -> bool:
        """Whether the execution must end by this watch (its process did not end)."""
        return not main.done() and self.done.done() and not self.done.cancelled()


async def settle_halted(
    state: ExecutionState, main: asyncio.Task[Any], watch: HaltWatch
) -> Outcome:
    """Stop the execution now and record its end (``cancelled``/``timed_out``)."""
    await stop(state, main)
    # Commit what completed before the end; the run stays as it was until
    # the end is recorded, in a transaction of its own that re-reads it.
    finish_stats(state, status=None)
    store, run_id = watch.store, state.run_id
    end = watch.done.result()
    if end == "cancelled":
        store.transact(
            run_id, lambda view: _cancel.cancel_in(view, None, requested=True)
        )
    else:
        store.transact(run_id, _cancel.time_out_in)
    state.stats.events_written += 1
    state.stats.commits += 1
    return Outcome(status=end)
