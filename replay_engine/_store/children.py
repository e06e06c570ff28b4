"""Sub-runs in the store: a child's outcome, journaled into its parent.

A child run (``ctx.run_child``) is a run of its own whose record names its
parent and the parent's invocation key (``RunRecord.child_of``/``child_key``).
The parent's journal holds the child's start at that key (an
``EffectRequested`` of kind ``child``) and then its outcome, so the parent
replays the result from its own journal without reading the child.

The outcome is written by :func:`deliver`, a post-like transaction on the
parent: it appends only if the key has a request and no outcome yet, so
whoever comes first (the parent executing the child inline, a worker that
finished the child alone, a resume after a crash between the child's end and
the parent's record) writes it, exactly once, and the others read it.
"""

from __future__ import annotations

from collections.abc import Callable

import blake3

import journal_format as jf

from .chain import AppendResult
from .run_txn import RunTxn
from .store import Store
from .telling import Append, transact_telling

CHILD_KIND = "child"
"""The ``kind`` of the ``EffectRequested`` that starts a child (JF-150)."""

CHILD_FAILED = "ChildRunFailed"
"""The ``ErrorInfo.type`` of a child that failed or was cancelled (JF-151)."""


def child_run_id(parent: str, key_text: str) -> str:
    """The default run id of the child started at ``key_text`` of ``parent`` (JF-153).

    ``{parent}--{key}`` when that is a valid run id (readable: ``r1--3.1.0``,
    a grandchild ``r1--3.1.0--0``); past 128 characters, the parent's first
    80 characters and 32 hex digits of blake3 over ``parent/key``, which stays
    unique and deterministic.
    """
    plain = f"{parent}--{key_text}"
    if len(plain) <= 128:
        return plain
    digest = blake3.blake3(f"{parent}/{key_text}".encode()).hexdigest()[:32]
    return f"{parent[:80]}--{digest}"


def outcome_of(store: Store, child_id: str, key: bytes) -> jf.Event | None:
    """What the parent records at ``key`` for the child, or None if it has not ended.

    ``completed`` gives an ``EffectCompleted`` with the child's result (the
    same payload address: the blob is shared); ``failed``, ``cancelled`` and
    ``timed_out`` give an ``EffectFailed`` of type ``ChildRunFailed``.
    """
    record = store.get_run(child_id)
    if record is None or record.status not in jf.FINISHED_STATUSES:
        return None
    # The terminal event is the last one, or close to it (a cancel request
    # may follow a failure): look at the last few only.
    tail = store.read_events(child_id, max(0, record.events - 4), record.events)
    for stored in reversed(tail):
        event = stored.event
        if isinstance(event, jf.RunCompleted):
            return jf.EffectCompleted(key=key, result=event.result)
        if isinstance(event, jf.RunFailed):
            error = event.error
            return _failed(
                key,
                f"child run {child_id!r} failed with {error.type}: {error.message}",
                error.traceback,
            )
        if isinstance(event, jf.RunCancelled):
            why = f" ({event.reason})" if event.reason else ""
            return _failed(key, f"child run {child_id!r} was cancelled{why}")
        if isinstance(event, jf.RunTimedOut):
            return _failed(key, f"child run {child_id!r} passed its deadline")
    return None


def _failed(key: bytes, message: str, traceback: str = "") -> jf.EffectFailed:
    error = jf.ErrorInfo(type=CHILD_FAILED, message=message, traceback=traceback)
    return jf.EffectFailed(key=key, error=error)


def deliver(
    store: Store,
    parent: str,
    key: bytes,
    outcome: jf.Event,
    *,
    on_append: Callable[[AppendResult], None] | None = None,
) -> jf.Event | None:
    """Journal a child's outcome at ``key`` of ``parent``, unless it has one.

    Returns the outcome the parent holds (this one, or the one recorded
    first), or None when the parent has no child request at ``key`` or has
    ended (nothing is written then). ``on_append`` is told what was appended,
    so an executing parent does not mistake its own write for a post.
    """

    def body(view: RunTxn, append: Append) -> jf.Event | None:
        if view.record.status in jf.ENDED_STATUSES:
            return None
        requested = False
        for stored in view.events_at(key):
            event = stored.event
            if isinstance(event, jf.EffectCompleted | jf.EffectFailed):
                return event
            if isinstance(event, jf.EffectRequested) and event.kind == CHILD_KIND:
                requested = True
        if not requested:
            return None
        append([outcome])
        return outcome

    held = transact_telling(store, parent, body, on_append)
    return held


def children_of(store: Store, run_id: str) -> list[jf.RunRecord]:
    """The runs whose parent is ``run_id`` (reads every run record)."""
    return [r for r in store.list_runs() if r.child_of == run_id]
