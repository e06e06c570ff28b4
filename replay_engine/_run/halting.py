"""Ending an execution from outside: a cancel request, or the run's deadline.

``Engine.cancel`` of a run executing here or in another process appends a
``cancel_requested`` event and marks the run record (``_store.cancel``); the
run's deadline is in its record too. So an execution learns of either by
reading one record, every ``POLL`` seconds (a timer at the deadline too):
never a read per event, and nothing on the replay or dispatch paths.

When one is due, the execution stops as a signal stops it (``stopping``),
but without a grace period: the dispatcher closes (nothing new starts;
async attempts are cancelled), the process is unwound, and attempts still
running in threads or processes, which nobody can interrupt, are abandoned:
their futures are cancelled, so a late result is dropped, never recorded.
What completed is committed, then the end (``run_cancelled`` with every
effect left without an outcome, or ``run_timed_out``) in one transaction.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import journal_format as jf

from .._store import cancel as _cancel
from .._store.store import Store
from .settle import Outcome, finish_stats, stop
from .state import ExecutionState

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
