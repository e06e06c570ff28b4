"""Checkpoints of a run while it runs, folded in memory from its own events.

A run is checkpointed while it executes (``_run/journal.py`` decides when), so
that a crash leaves a checkpoint covering most of its events and the next
resume folds only the rest. Reading the run's new events back out of LMDB to
build it (:func:`checkpoints.put_checkpoint`: a cursor step, a digest check
and a decode per event) would cost a fresh fan-out about 1.6 µs per event; the
events were just written by this very execution, so they are folded from the
``jf.Event`` objects it appended instead (no decode, no digest check: nothing
was read), and the head digest is the one the append computed.

Between two checkpoints the run keeps only those events (the tail). A
checkpoint is built on a new index: the last one this execution wrote, read
back, checked and decoded (its events are immutable), or at the first one the
loaded index seen through an overlay (``_TailCalls``: the loaded entries are
copied before a fold changes them), so the runtime's index
(``RunJournal.index``) is never written and never sees a call of this
execution as a recorded one. The index is dropped once the record is sealed:
a long fan-out holds no second index of all its calls, only the events since
its last checkpoint.

Correct first: when anyone else appended to the run between two commits of
this execution (a post), or when this execution appended through another path
(``RunJournal.note_append``), the events in memory are not the run's whole
tail, and the checkpoint folds the run's events from LMDB after what the index
covers, exactly as a waiting run's always did. Checkpoints stay derived data
(format spec section 12): same record, same checks on reading.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import journal_format as jf

from ..errors import JournalCorruptError
from .chain import AppendResult
from .checkpoints import _TailCalls, fold_events, put_checkpoint, seal_index

_log = logging.getLogger("replay_engine")


class RunningCheckpoints:
    """What an executing run keeps to checkpoint itself without reading back.

    ``loaded`` is the runtime's index (covering the events the execution
    loaded), never written here. ``stored`` is the (events, head) of the last
    checkpoint this execution wrote, or None. ``tail`` holds the events this
    execution committed after what that checkpoint (else ``loaded``) covers,
    in seq order, or None when that is not known (someone else appended in
    between): the next checkpoint then folds from LMDB.

    Nothing else is kept between checkpoints: the index a checkpoint is built
    from is made for it (from the stored checkpoint, decoded and checked, or
    from ``loaded``) and dropped after it, so memory holds at most the events
    since the last checkpoint (at most about half of a long run's: a doubling
    rule), never a second index of every call.
    """

    __slots__ = ("_written", "loaded", "stored", "tail")

    def __init__(self, loaded: jf.CallIndex) -> None:
        self.loaded = loaded
        self.stored: tuple[int, bytes] | None = None
        self.tail: list[jf.Event] | None = []
        self._written: tuple[int, bytes] | None = None

    @property
    def covered(self) -> int:
        """Events before the tail: the stored checkpoint's, else the loaded ones."""
        stored = self.stored
        return self.loaded.events if stored is None else stored[0]

    def created(self, started: jf.RunStarted) -> None:
        """The run was created by this execution: ``started`` is its event 0."""
        if self.stored is None and self.tail == [] and self.loaded.events == 0:
            self.tail = [started]

    def committed(self, result: AppendResult, events: Sequence[jf.Event]) -> None:
        """This execution committed ``events`` (without a checkpoint): note them.

        Called after the commit is durable. Events that do not follow the
        tail (someone else's lie before them) make it unknown.
        """
        tail = self.tail
        if tail is None:
            return
        if result.first_seq != self.covered + len(tail):
            self.tail = None  # someone else's events: LMDB decides next time
            return
        tail.extend(events)

    def checkpointed(self) -> None:
        """The checkpoint :meth:`write` made was committed: it is the base now."""
        self.stored, self._written = self._written, None
        self.tail = []

    def unknown(self) -> None:
        """Events were appended that are not in the tail (another path)."""
        self.tail = None

    def write(
        self,
        txn: Any,
        dbs: dict[bytes, Any],
        run_id: str,
        events: Sequence[jf.Event],
        result: AppendResult,
    ) -> int:
        """Checkpoint the run in ``txn``, just after ``events`` were appended.

        Returns the events covered (0: none written, with a warning). Nothing
        here changes until :meth:`checkpointed` (the commit is durable), so
        a retried transaction (a map grown) starts over from the same state.
        """
        self._written = None
        try:
            index = self._base(txn, dbs, run_id)
            tail = self.tail
            if (
                index is not None
                and tail is not None
                and result.first_seq == index.events + len(tail)
            ):
                fold_own(index, itertools.chain(tail, events))
            else:
                index = _overlay(self.loaded) if index is None else index
                fold_events(txn, dbs, run_id, index, None)
        except (JournalCorruptError, jf.FormatError) as exc:
            # Never lose the events being appended over derived data.
            _log.warning("run %r: no checkpoint written: %s", run_id, exc)
            return 0
        index.head = result.head
        sealed = seal_index(run_id, index)
        self._written = (index.events, index.head)
        del index  # the index's objects: before LMDB copies the record
        txn.put(jf.run_prefix(run_id), sealed, db=dbs[jf.DB_CHECKPOINTS])
        return self._written[0]

    def _base(
        self, txn: Any, dbs: dict[bytes, Any], run_id: str
    ) -> jf.CallIndex | None:
        """A new index to build on: the stored checkpoint's, else ``loaded``'s.

        The stored one is read back sealed and checked like any checkpoint
        (its digest, and the events and head this execution wrote it with);
        None when it is not the one this execution wrote (the caller then
        folds from LMDB after ``loaded``).
        """
        stored = self.stored
        if stored is None:
            return _overlay(self.loaded)
        raw = txn.get(jf.run_prefix(run_id), db=dbs[jf.DB_CHECKPOINTS])
        if raw is None:
            return None
        try:
            checkpoint = jf.unseal_checkpoint(raw)
        except jf.FormatError:
            return None
        del raw
        if (checkpoint.run_id, checkpoint.events, checkpoint.head) != (run_id, *stored):
            return None
        return jf.CallIndex.from_checkpoint(checkpoint)


def _overlay(base: jf.CallIndex) -> jf.CallIndex:
    """A new index equal to ``base`` that never writes ``base``'s entries."""
    index = jf.CallIndex()
    # A fresh run's loaded index is empty: a plain dict then (its lookups
    # are C calls; the overlay's ``get`` is Python's).
    index.calls = _TailCalls(base.calls) if base.calls else {}
    index.logs = set(base.logs)
    index.signals = list(base.signals)
    index.consumed_signals = set(base.consumed_signals)
    index.started = base.started
    index.last_event = base.last_event
    index.events = base.events
    index.head = base.head
    return index


def fold_own(index: jf.CallIndex, events: Iterable[jf.Event]) -> None:
    """``index.fold(index.events, events)``, the two most frequent rules inlined.

    The events are this execution's own, committed in this order right after
    what ``index`` covers. The same rules as ``CallIndex._fold_one`` (JF-102);
    a fresh fan-out's events are all requests and completions.

    Raises:
        OrphanOutcome: an outcome at a key with no request before it.
    """
    calls = index.calls
    get = calls.get
    requested, completed = jf.EffectRequested, jf.EffectCompleted
    entry_of, effect = jf.CallEntry, jf.EFFECT
    seq = index.events
    last = index.last_event
    try:
        for event in events:
            kind = type(event)
            if kind is requested:
                calls[event.key] = entry_of(  # type: ignore[union-attr]
                    effect,
                    seq,
                    event.task,  # type: ignore[union-attr]
                    event.kind,  # type: ignore[union-attr]
                    event.args,  # type: ignore[union-attr]
                    deadline_ns=event.deadline_ns,  # type: ignore[union-attr]
                )
            elif kind is completed:
                call = get(event.key)  # type: ignore[union-attr]
                if call is None or call.kind != effect:
                    raise jf.OrphanOutcome(seq, event.key)  # type: ignore[union-attr]
                call.result = event.result  # type: ignore[union-attr]
                if event.signal_seq is not None:  # type: ignore[union-attr]
                    index.consumed_signals.add(event.signal_seq)  # type: ignore[union-attr]
            else:
                index._fold_other(seq, event)
            last, seq = event, seq + 1
    finally:
        # Up to the last event folded whole (a failure resets the index).
        index.events = seq
        index.last_event = last


def write_checkpoint(
    txn: Any,
    dbs: dict[bytes, Any],
    run_id: str,
    checkpoint: jf.CallIndex | RunningCheckpoints,
    events: Sequence[jf.Event],
    result: AppendResult,
) -> int:
    """The checkpoint an append asked for, in its transaction; events covered."""
    if isinstance(checkpoint, RunningCheckpoints):
        return checkpoint.write(txn, dbs, run_id, events, result)
    return put_checkpoint(txn, dbs, run_id, checkpoint)
