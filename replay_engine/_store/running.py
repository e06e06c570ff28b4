"""Checkpoints of a run while it runs, folded in memory from its own events.

A run is checkpointed while it executes (``_run/journal.py`` decides when), so
that a crash leaves a checkpoint covering most of its events and the next
resume folds only the rest. Reading the run's new events back out of LMDB to
build it (:func:`checkpoints.put_checkpoint`: a cursor step, a digest check
and a decode per event) would cost a fresh fan-out about 1.6 µs per event; the
events were just written by this very execution, so they are folded from the
``jf.Event`` objects it appended instead (no decode, no digest check: nothing
was read), and the head digest is the one the append computed.

The index the checkpoints are built from (:attr:`RunningCheckpoints.index`)
is this module's own, kept apart from the runtime's (``RunJournal.index``):
the runtime must never see a call of this execution as a recorded one. It is
an overlay of the loaded index (``_TailCalls``: the loaded entries are copied
before a fold changes them), so the loaded index is never written.

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

TAIL_CAP = 1 << 16
"""Events held in memory at most before they are folded into the index
(:meth:`RunningCheckpoints.committed`): a long fan-out's events are not kept
alive until its next checkpoint (which may be hundreds of thousands away)."""


class RunningCheckpoints:
    """What an executing run keeps to checkpoint itself without reading back.

    ``loaded`` is the runtime's index (covering the events the execution
    loaded), never written here. ``index`` covers the run's events
    ``0 .. index.events - 1`` once built (lazily: a run that is never
    checkpointed never builds it). ``tail`` holds the events this execution
    committed after what the index covers, in seq order, or None when that is
    not known (someone else appended in between): the next checkpoint then
    folds from LMDB.
    """

    __slots__ = ("index", "loaded", "tail")

    def __init__(self, loaded: jf.CallIndex) -> None:
        self.loaded = loaded
        self.index: jf.CallIndex | None = None
        self.tail: list[jf.Event] | None = []

    @property
    def covered(self) -> int:
        """Events the index covers (the loaded ones until it is built)."""
        index = self.index
        return self.loaded.events if index is None else index.events

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
        if len(tail) >= TAIL_CAP:
            # Committed, so safe to fold outside any transaction: the memory
            # of a long run's tail is bounded, at the price of folding the
            # events now even if no checkpoint follows.
            index = self._own()
            try:
                fold_own(index, tail)
            except jf.FormatError as exc:
                self._lost(str(exc))
                return
            index.head = result.head
            self.tail = []

    def created(self, started: jf.RunStarted) -> None:
        """The run was created by this execution: ``started`` is its event 0."""
        if self.index is None and self.tail == [] and self.loaded.events == 0:
            self.tail = [started]

    def checkpointed(self) -> None:
        """A checkpoint covering every event up to this commit was written."""
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

        Returns the events covered (0: none written, with a warning). Safe to
        call again for the same commit when the transaction is retried (a map
        grown): the index already covers it, and only its head is taken anew.
        """
        end = result.first_seq + result.count
        index = self._own()
        try:
            if index.events != end:
                tail = self.tail
                if tail is not None and result.first_seq == index.events + len(tail):
                    fold_own(index, itertools.chain(tail, events))
                else:
                    fold_events(txn, dbs, run_id, index, None)
        except (JournalCorruptError, jf.FormatError) as exc:
            # Never lose the events being appended over derived data.
            self._lost(str(exc))
            _log.warning("run %r: no checkpoint written: %s", run_id, exc)
            return 0
        index.head = result.head
        txn.put(
            jf.run_prefix(run_id), seal_index(run_id, index), db=dbs[jf.DB_CHECKPOINTS]
        )
        return index.events

    def _own(self) -> jf.CallIndex:
        """The index checkpoints are built from, made on first use."""
        index = self.index
        if index is None:
            base = self.loaded
            index = self.index = jf.CallIndex()
            # A fresh run's loaded index is empty: a plain dict then (its
            # lookups are C calls; the overlay's ``get`` is Python's).
            index.calls = _TailCalls(base.calls) if base.calls else {}
            index.logs = set(base.logs)
            index.signals = list(base.signals)
            index.consumed_signals = set(base.consumed_signals)
            index.started = base.started
            index.last_event = base.last_event
            index.events = base.events
            index.head = base.head
        return index

    def _lost(self, why: str) -> None:
        """A fold failed part-way: start again from the loaded index and LMDB."""
        del why
        self.index = None
        self.tail = None


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
