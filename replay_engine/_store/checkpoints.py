"""A run's call index: folded from its events, starting from its checkpoint.

A module of its own because the checkpoint is derived data with its own rules
(format spec section 12): one that is damaged or off the chain is ignored with
a warning, never trusted and never fatal (JF-105), and writing one must never
cost the events appended with it. Every function works inside the caller's
transaction: reading the index is the hot path of every resume, and a
checkpoint is written in the same commit as the append that asks for it.
"""

from __future__ import annotations

import bisect
import itertools
import logging
from collections.abc import Callable
from typing import Any

import msgspec

import journal_format as jf

from ..errors import JournalCorruptError
from .chain import check_end, damaged, orphaned
from .records import decode_run

_log = logging.getLogger("replay_engine")

_FEW_ADDED = 64
"""Up to this many new calls in an overlay are inserted into the sorted base."""


def load_index(
    txn: Any,
    dbs: dict[bytes, Any],
    run_id: str,
    stop: int | None,
    use_checkpoint: bool,
) -> tuple[jf.CallIndex, int]:
    """The run's call index up to ``stop``, and how many events came from a checkpoint.

    Raises:
        JournalCorruptError: a damaged event, naming run and seq.
    """
    start = read_checkpoint(txn, dbs, run_id, stop) if use_checkpoint else None
    if start is None:
        return fold_all(txn, dbs, run_id, jf.CallIndex, stop), 0
    restored = start.events
    fold_events(txn, dbs, run_id, start, stop)
    return start, restored


def fold_all(
    txn: Any,
    dbs: dict[bytes, Any],
    run_id: str,
    new_index: Callable[[], jf.CallIndex],
    stop: int | None,
) -> jf.CallIndex:
    """A new index (``new_index()``) with the run's events up to ``stop`` folded in.

    The cold resume's read: every event from the first. It reads exactly the
    run's event keys (:func:`_fold_exact`); when anything there is not as a
    sound run has it, it starts again with another new index and the
    careful read (:func:`fold_events`), which decides, with its own errors:
    damage is found exactly as before, only sooner on a sound run.

    Raises:
        JournalCorruptError: a damaged event, or an outcome without a request.
    """
    index = new_index()
    if _fold_exact(txn, dbs, run_id, index, stop):
        return index
    index = new_index()
    fold_events(txn, dbs, run_id, index, stop)
    return index


def _fold_exact(
    txn: Any, dbs: dict[bytes, Any], run_id: str, index: jf.CallIndex, stop: int | None
) -> bool:
    """Fold the events the run record counts (up to ``stop``) into a new ``index``.

    True when the run's events are exactly the keys ``event_key(prefix, 0)``
    to ``event_key(prefix, end - 1)`` in a row, each record passing every
    check of ``fold_run`` (digest, seq, chain link), and the careful read
    would stop where this one did (no further key of the run; the run
    record's count and head match: ``check_end``). So the records it folds
    are those ``fold_events`` folds and give the same index. False, with
    ``index`` left part-folded, on anything else: the caller folds again.

    Why: ``fold_events`` compares every key with the run's key range (a
    key object, a tuple and four comparisons per event); here the cursor
    yields them from the run's first key, ``islice`` counts, the fold
    checks each key's length, and the last key read is compared once.
    """
    raw = txn.get(run_id.encode(), db=dbs[jf.DB_RUNS])
    if raw is None:
        return False
    try:
        record = decode_run(run_id, raw)
    except JournalCorruptError:
        return False
    end = record.events if stop is None else min(stop, record.events)
    prefix = jf.run_prefix(run_id)
    first = jf.event_key(prefix, 0)
    cursor = txn.cursor(db=dbs[jf.DB_EVENTS])
    if end < 1 or not cursor.set_key(first):
        return False
    try:
        index.fold_run(run_id, itertools.islice(cursor, end))
    except (jf.DamagedEvent, jf.OrphanOutcome):
        return False
    # ``end`` records of event-key length, in key order from the run's
    # first key to its key ``end - 1``: exactly the keys 0 .. end - 1.
    if index.events != end or cursor.key() != jf.event_key(prefix, end - 1):
        return False
    if stop is None or stop > end:
        # The careful read goes on while keys are the run's, then checks
        # the end against the run record.
        if cursor.next():
            key = cursor.key()
            if len(key) == len(first) and key.startswith(prefix):
                return False
        if record.events != index.events or record.head != index.head:
            return False
    return True


def fold_events(
    txn: Any,
    dbs: dict[bytes, Any],
    run_id: str,
    index: jf.CallIndex,
    stop: int | None,
) -> None:
    """Fold the run's events after ``index.events`` (up to ``stop``) into it.

    Raises:
        JournalCorruptError: a damaged event, or an outcome without a request.
    """
    cursor = txn.cursor(db=dbs[jf.DB_EVENTS])
    try:
        if cursor.set_range(jf.event_key(jf.run_prefix(run_id), index.events)):
            index.fold_records(run_id, cursor, stop)
    except jf.DamagedEvent as exc:
        raise damaged(run_id, exc.seq, exc.key, exc.what) from None
    except jf.OrphanOutcome as exc:
        raise orphaned(run_id, exc) from None
    if stop is None or index.events < stop:
        check_end(txn, dbs, run_id, index.events, index.head)


def read_checkpoint(
    txn: Any, dbs: dict[bytes, Any], run_id: str, stop: int | None
) -> jf.CallIndex | None:
    """The run's checkpoint as an index, if it is valid and usable (JF-105).

    A checkpoint is derived data: one that is damaged or does not match
    the chain is not used (the events are folded instead) and is reported
    by ``verify``.
    """
    prefix = jf.run_prefix(run_id)
    raw = txn.get(prefix, db=dbs[jf.DB_CHECKPOINTS])
    if raw is None:
        return None
    try:
        checkpoint = jf.unseal_checkpoint(raw)
    except jf.FormatError as exc:
        _log.warning(
            "run %r: its checkpoint is damaged (%s); reading every event"
            " instead. `replay-engine verify %s` reports it.",
            run_id,
            exc,
            run_id,
        )
        return None
    # The record's bytes (tens of MB on a long run) are not needed past the
    # decode: not held while the index's dict is built (the warm peak).
    del raw
    events_db = dbs[jf.DB_EVENTS]

    def digest_of(seq: int) -> bytes | None:
        stored: bytes | None = txn.get(jf.event_key(prefix, seq), db=events_db)
        return None if stored is None else stored[: jf.ADDRESS_SIZE]

    problem = jf.checkpoint_mismatch(checkpoint, run_id, digest_of)
    if problem is not None:
        _log.warning(
            "run %r: its checkpoint %s; reading every event instead", run_id, problem
        )
        return None
    if stop is not None and checkpoint.events > stop:
        return None
    return jf.CallIndex.from_checkpoint(checkpoint)


def put_checkpoint(
    txn: Any, dbs: dict[bytes, Any], run_id: str, base: jf.CallIndex
) -> int:
    """Checkpoint the run as it stands in ``txn``, from ``base``; events covered.

    ``base`` is left as it is (the runtime may still be using it): the events
    after it are folded into an overlay (:class:`_TailCalls`) and the
    checkpoint is built from both. Returns 0 when no checkpoint was written.
    """
    index = jf.CallIndex()
    overlay = _TailCalls(base.calls)
    index.calls = overlay
    index.logs = set(base.logs)
    index.signals = list(base.signals)
    index.consumed_signals = set(base.consumed_signals)
    index.started = base.started
    index.last_event = base.last_event
    index.events = base.events
    index.head = base.head
    try:
        fold_events(txn, dbs, run_id, index, None)
    except JournalCorruptError as exc:
        # Never lose the events being appended over derived data.
        _log.warning("run %r: no checkpoint written: %s", run_id, exc)
        return 0
    index.calls = {}  # the overlay is read below, not through the index
    checkpoint = index.to_checkpoint(run_id, jf.FORMAT_VERSION)
    checkpoint.keys, checkpoint.calls = overlay.merged()
    sealed = jf.seal_checkpoint(checkpoint)
    del checkpoint  # its lists: before LMDB copies the record
    txn.put(jf.run_prefix(run_id), sealed, db=dbs[jf.DB_CHECKPOINTS])
    return index.events


class _TailCalls(dict[bytes, jf.CallEntry]):
    """The calls of a tail folded over ``base``'s, without copying ``base``.

    It was a copy of the whole dict (tens of MB on a long run's first
    checkpoint, at the peak of a cold resume). The fold reads an entry to
    mutate it only through ``get`` (``CallIndex.fold_records``,
    ``_fold_other``, ``_effect``), so ``get`` copies a base entry into the
    overlay first; new entries are set into the overlay directly. ``base``
    is never written.
    """

    __slots__ = ("base",)

    def __init__(self, base: dict[bytes, jf.CallEntry]) -> None:
        super().__init__()
        self.base = base

    def get(  # type: ignore[override]
        self, key: bytes, default: jf.CallEntry | None = None
    ) -> jf.CallEntry | None:
        entry = dict.get(self, key)
        if entry is None:
            entry = self.base.get(key)
            if entry is None:
                return default
            entry = self[key] = msgspec.structs.replace(entry)
        return entry

    def merged(self) -> tuple[list[bytes], list[jf.CallEntry]]:
        """Every key of base and overlay in byte order (JF-103), and their entries.

        C-level passes over ``base`` (a resume's first checkpoint has every
        call of the run in it, the overlay a few): its keys and entries are
        taken in fold order, which is byte order for most runs (checked, else
        sorted), and the overlay's entries are then put in their places.
        """
        base = self.base
        keys = sorted(base)  # already in order: one pass (timsort finds the run)
        if keys == list(base):  # the same objects: compared by identity
            calls = list(base.values())
        else:
            calls = list(map(base.__getitem__, keys))
        added = [key for key in self if key not in base]
        if len(added) > _FEW_ADDED:
            # Many new calls (a long execution since the index was loaded):
            # one sort of everything beats an insert per call.
            keys.extend(added)
            keys.sort()
            own = dict.get  # the overlay's own entry: C calls, no Python frame
            return keys, [own(self, key) or base[key] for key in keys]
        for key in added:
            at = bisect.bisect_left(keys, key)
            keys.insert(at, key)
            calls.insert(at, dict.__getitem__(self, key))
        for key, entry in dict.items(self):
            calls[bisect.bisect_left(keys, key)] = entry
        return keys, calls
