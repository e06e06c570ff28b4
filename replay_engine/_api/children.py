"""Sub-runs on the engine's side: executing a child, delivering its end, cascading.

The runtime (``_run.children``) decides what a ``ctx.run_child`` call means
against the parent's journal; this module is the ``ChildExecutor`` it calls:
it creates or resumes the child run and executes it in the same event loop,
through the same ``_execute`` as any run (its own run lock, journal and
passes). It also keeps the parent informed when a child ends outside its
parent's execution (a worker, a ``resume`` of the child, a cancel), and
cancels the unfinished children of a run that was cancelled or timed out.
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Callable
from typing import Any

import journal_format as jf

from .._store import children as _children
from .._store.lock import RunLock, hostname
from .._store.store import Store
from ..errors import RunEndedError, RunExistsError, RunLockedError

# ``Executing`` (the engine's mixin) imports this module, so the engine is
# typed loosely here rather than by an import cycle.
Executing = Any

INLINE: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "replay_engine_child_inline", default=False
)
"""True inside a child's execution driven by its parent: the parent journals
the child's outcome itself (counting the append as its own)."""


class ChildBridge:
    """The ``ChildExecutor`` of one execution: children run on ``engine``."""

    __slots__ = ("_engine",)

    def __init__(self, engine: Executing) -> None:
        self._engine = engine

    async def execute_child(
        self,
        run_id: str,
        process: Callable[..., Any],
        inputs_bytes: bytes,
        link: tuple[str, str],
    ) -> str:
        """Create or resume the child and execute it; its status after."""
        INLINE.set(True)  # this task's own context: not the parent's
        engine = self._engine
        try:
            record = engine._store.get_run(run_id)
            if record is None:
                return await _start(engine, run_id, process, inputs_bytes, link)
            if record.status in jf.FINISHED_STATUSES:
                return str(record.status)  # ended before its delivery (a crash)
            run = await engine.resume_async(run_id, process=process)
            return str(run.status)
        except (RunLockedError, RunExistsError):
            # Another process executes (or just created) the child: the
            # parent waits; that process journals the child's end into it.
            return "locked"


async def _start(
    engine: Executing,
    run_id: str,
    process: Callable[..., Any],
    inputs_bytes: bytes,
    link: tuple[str, str],
) -> str:
    """Create the child run (linked to its parent) and execute it, as ``run`` does."""
    from .._run import process_ref as _process_ref
    from .._run.journal import RunJournal

    address = jf.payload_ref(inputs_bytes)
    started = jf.RunStarted(
        process=_process_ref.reference(process),
        fingerprint=_process_ref.fingerprint(process),
        inputs=address,
        pid=os.getpid(),
        host=hostname(),
    )
    store = engine._store
    with RunLock(engine.path, run_id):
        note = engine._processes.starting(run_id, process, started)
        store.create_run(
            run_id, started, jf.blobs_for(address, inputs_bytes), child_of=link
        )
        engine._processes.started(note, engine._first(run_id).digest)
        journal = RunJournal(store, run_id)
        journal.recorded_events = journal.known_events = 1
        journal.started = started
        decoded = jf.decode_payload(inputs_bytes)
        run = await engine._execute(
            journal, process, decoded, [], on_progress=None, on_log=None
        )
    return str(run.status)


def deliver_if_child(store: Store, run_id: str) -> None:
    """A run that just ended: if it is a child, journal its outcome into its parent.

    Called after an execution (or a cancel) that was not driven by the
    parent; the parent, if waiting on it, then has news (a worker wakes it).
    Cheap for a run that is no child: one record read.
    """
    record = store.get_run(run_id)
    if record is None or record.child_of is None or record.child_key is None:
        return
    try:
        key = jf.encode_key(jf.parse_key(record.child_key))
    except jf.FormatError:
        return  # a record no engine wrote (journals are untrusted): no parent to tell
    outcome = _children.outcome_of(store, run_id, key)
    if outcome is not None and store.get_run(record.child_of) is not None:
        _children.deliver(store, record.child_of, key, outcome)


def cancel_children(
    engine: Any,
    run_id: str,
    reason: str | None,
    *,
    ended: str = "was cancelled",
    wait: float | None = None,
) -> list[str]:
    """Cancel every unfinished descendant of ``run_id``; the ids cancelled.

    ``ended`` says what happened to ``run_id`` (the children's cancel
    reason). ``wait``: how long to wait for a child another process executes
    (None: ``cancel``'s default). With a ``wait`` the cascade is done here,
    level by level, with the same ``wait``: an execution that just timed out
    calls it from its event loop with 0, so it never blocks the loop.
    """
    done: list[str] = []
    why = f"its parent run {run_id!r} {ended}" + (f": {reason}" if reason else "")
    for child in _children.children_of(engine._store, run_id):
        if child.status in jf.ENDED_STATUSES:
            continue
        try:
            if wait is None:
                engine.cancel(child.run_id, why)  # cascades further down
            else:
                engine._cancel_one(child.run_id, why, wait)
                cancel_children(engine, child.run_id, why, wait=wait)
                deliver_if_child(engine._store, child.run_id)
        except RunEndedError:
            continue  # it ended meanwhile
        done.append(child.run_id)
    return done


def end_children_of_timed_out(engine: Any, run_id: str) -> None:
    """A run that just timed out ends its unfinished children (docs: Sub-runs).

    Called by the execution that recorded ``timed_out``, once. A child
    executed inline has stopped with its parent (so it is cancelled at once);
    one another process executes gets a cancel request, without waiting.
    """
    cancel_children(engine, run_id, None, ended="timed out", wait=0.0)
