"""Ending a run from outside its process: cancel, and run deadlines.

A module of its own because three parties end runs this way, and they must
write the same thing: ``Engine.cancel`` of a run nobody executes, the
executor that sees a ``cancel_requested`` or its deadline pass, and the
resume that finds either before executing anything. Each decision is one
write transaction (``Store.transact``) that re-reads the run first, so a
SIGKILL at any moment leaves the run either ended or as it was.

A run executing elsewhere (its run lock is held) is not ended from here:
``request_cancel`` appends a ``cancel_requested`` event, without the lock,
like a post, and marks the run record (``cancel_requested_ns``), so the
executor notices by reading one record, never by scanning events.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import journal_format as jf

from ..errors import RunEndedError
from .chain import StoredEvent
from .run_txn import RunTxn
from .store import Store

ENDED = jf.ENDED_STATUSES
"""Statuses nothing changes any more (``failed`` may be resumed)."""


def ended_error(run_id: str, status: str) -> RunEndedError:
    """The error for cancelling a run that already ended."""
    hint = {
        "completed": "it completed; fork it to run again",
        "cancelled": "it was cancelled already",
        "timed_out": "it passed its deadline and timed out",
    }.get(status, status)
    return RunEndedError(
        f"run {run_id!r} already ended ({hint}); cancelling it changes nothing"
        " and nothing was written",
        run_id=run_id,
        status=status,
    )


def open_effects(events: Sequence[StoredEvent]) -> list[bytes]:
    """Keys of effects requested without an outcome, in key order."""
    open_keys: set[bytes] = set()
    for stored in events:
        event = stored.event
        if isinstance(event, jf.EffectRequested):
            open_keys.add(event.key)
        elif isinstance(
            event, jf.EffectCompleted | jf.EffectFailed | jf.EffectAbandoned
        ):
            open_keys.discard(event.key)
    return sorted(open_keys)


def _requested_reason(events: Sequence[StoredEvent]) -> str | None:
    for stored in reversed(events):
        if isinstance(stored.event, jf.CancelRequested):
            return stored.event.reason
    return None


def cancel_in(view: RunTxn, reason: str | None, *, requested: bool = False) -> None:
    """End the run ``cancelled`` in this transaction (the caller holds its lock).

    With ``requested``, the reason is the latest ``cancel_requested``'s.

    Raises:
        RunEndedError: the run already ended; nothing is written.
    """
    status = view.record.status
    if status in ENDED:
        raise ended_error(view.run_id, status)
    events = view.events()
    if requested:
        reason = _requested_reason(events)
    cancelled = jf.RunCancelled(reason=reason, abandoned=open_effects(events))
    view.append([cancelled], status="cancelled")


def request_cancel_in(view: RunTxn, reason: str | None) -> None:
    """Ask the run's executor to cancel it (no lock needed): one event, one mark.

    Raises:
        RunEndedError: the run already ended; nothing is written.
    """
    status = view.record.status
    if status in ENDED:
        raise ended_error(view.run_id, status)
    view.append([jf.CancelRequested(reason=reason)])
    view.mark(cancel_requested_ns=time.time_ns())


def time_out_in(view: RunTxn) -> None:
    """End the run ``timed_out`` (its deadline passed), unless it already ended."""
    deadline = view.record.deadline_ns
    if view.record.status in ENDED or deadline is None:
        return
    view.append([jf.RunTimedOut(deadline_ns=deadline)], status="timed_out")


def due_end(record: jf.RunRecord, now_ns: int | None = None) -> str | None:
    """How a run that is not executing must end now, if it must.

    ``"cancelled"`` when a cancel was requested, ``"timed_out"`` when its
    deadline has passed, else None (also for a run that already ended).
    """
    if record.status in ENDED:
        return None
    if record.cancel_requested_ns is not None:
        return "cancelled"
    deadline = record.deadline_ns
    if deadline is not None and (now_ns or time.time_ns()) >= deadline:
        return "timed_out"
    return None


def end_if_due(store: Store, run_id: str) -> str | None:
    """End the run if a cancel or its deadline says so (caller holds the lock).

    Reads one record; writes (one transaction, which decides again on what
    it reads) only when there is something to record. Returns the status the
    run ended with, or None when it goes on.
    """
    record = store.get_run(run_id)
    if record is None or due_end(record) is None:
        return None

    def body(view: RunTxn) -> str | None:
        end = due_end(view.record)
        if end == "cancelled":
            cancel_in(view, None, requested=True)
        elif end == "timed_out":
            time_out_in(view)
        return end

    return store.transact(run_id, body)
