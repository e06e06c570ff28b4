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
    batch: int | None = None,
    taken: list[bytes] | None = None,
) -> tuple[jf.CallIndex, int, bool]:
    """The run's call index up to ``stop``, how many events came from a checkpoint.

    And whether the fold stopped after ``batch`` events (when given) with
    more to read: the caller continues with :func:`fold_events` in a new
    transaction. ``taken``: see :func:`read_checkpoint`. The events after
    the checkpoint (or all of them) are read with :func:`fold_exact`; when
    they are not as a sound run has them, the careful read decides.

    Raises:
        JournalCorruptError: a damaged event, naming run and seq.
    """
    start = read_checkpoint(txn, dbs, run_id, stop, taken) if use_checkpoint else None
    if start is None:
        index = jf.CallIndex()
        more = fold_exact(txn, dbs, run_id, index, stop, batch)
        if more is None:  # not as a sound run has it: the careful read decides
            index = jf.CallIndex()
            more = fold_events(txn, dbs, run_id, index, stop, batch)
        return index, 0, more
    restored = start.events
    # The tail after the checkpoint is read like a cold fold (fold_exact):
    # the careful read's range checks (a generator step, a tuple and four
    # compares per event) were about 6% of a resume's load (issue 17).
    more = fold_exact(txn, dbs, run_id, start, stop, batch)
    if more is None:
        # Not as a sound run has it. The exact read may have folded part of
        # the tail into the checkpoint's entries (a completion sets its
        # request's result), so the careful read, which decides, starts from
        # the checkpoint read again. When nothing was folded (no tail, or
        # its first record fails a check, which raises before any change),
        # the index is as restored.
        if start.events != restored:
            del start  # (not held while the checkpoint is decoded again)
            again = read_checkpoint(txn, dbs, run_id, stop)
            if again is None:  # (``taken`` was read in an earlier transaction)
                return load_index(txn, dbs, run_id, stop, False, batch)
            start, restored = again, again.events
        more = fold_events(txn, dbs, run_id, start, stop, batch)
    return start, restored, more


def fold_all(
    txn: Any,
    dbs: dict[bytes, Any],
    run_id: str,
    new_index: Callable[[], jf.CallIndex],
    stop: int | None,
) -> jf.CallIndex:
    """A new index (``new_index()``) with the run's events up to ``stop`` folded in.

    Every event from the first, in this transaction: :func:`fold_exact`, or
    when anything there is not as a sound run has it, again from another new
    index with the careful read (:func:`fold_events`), which decides, with
    its own errors: damage is found exactly as before, only sooner on a
    sound run.

    Raises:
        JournalCorruptError: a damaged event, or an outcome without a request.
    """
    index = new_index()
    if fold_exact(txn, dbs, run_id, index, stop) is not None:
        return index
    index = new_index()
    fold_events(txn, dbs, run_id, index, stop)
    return index


def fold_exact(
    txn: Any,
    dbs: dict[bytes, Any],
    run_id: str,
    index: jf.CallIndex,
    stop: int | None,
    batch: int | None = None,
) -> bool | None:
    """:func:`fold_events` reading exactly the keys the run record counts.

    Folds the events after ``index.events`` up to ``stop`` (``batch`` of
    them at most) and returns what :func:`fold_events` would: True when it
    stopped at the batch limit with more to read, False when complete. None
    when the run's keys from ``index.events`` on are not exactly
    ``event_key(prefix, seq)`` in a row, each passing every check of
    ``fold_run`` (digest, seq, chain link), up to where the careful read
    would stop (no further key of the run; the run record's count and head
    match: ``check_end``): ``index`` is then part-folded, and the caller must
    fold from a state it kept (a new index) with the careful read, whose
    result or error is the one to give.

    Why: ``fold_events`` compares every key with the run's key range (a key
    object, a tuple and four comparisons per event); here the cursor yields
    them from the first key wanted, ``islice`` counts, the fold checks each
    key's length, and the last key read is compared once.
    """
    raw = txn.get(run_id.encode(), db=dbs[jf.DB_RUNS])
    if raw is None:
        return None
    try:
        record = decode_run(run_id, raw)
    except JournalCorruptError:
        return None
    begin = index.events
    end = record.events if stop is None else min(stop, record.events)
    limit = end if batch is None else min(end, begin + batch)
    prefix = jf.run_prefix(run_id)
    cursor = txn.cursor(db=dbs[jf.DB_EVENTS])
    cursor_start = jf.event_key(prefix, begin)
    if limit <= begin or not cursor.set_key(cursor_start):
        return None
    try:
        index.fold_run(run_id, itertools.islice(cursor, limit - begin))
    except (jf.DamagedEvent, jf.OrphanOutcome):
        return None
    # ``limit - begin`` records of event-key length, in key order from key
    # ``begin`` to key ``limit - 1``: exactly those keys.
    if index.events != limit or cursor.key() != jf.event_key(prefix, limit - 1):
        return None
    if limit < end:
        return True  # the batch's end: the next one checks the chain on
    if stop is None or stop > end:
        # The careful read goes on while keys are the run's, then checks
        # the end against the run record.
        if cursor.next():
            key = cursor.key()
            if len(key) == len(cursor_start) and key.startswith(prefix):
                return None
        if record.events != index.events or record.head != index.head:
            return None
    return False


def fold_events(
    txn: Any,
    dbs: dict[bytes, Any],
    run_id: str,
    index: jf.CallIndex,
    stop: int | None,
    batch: int | None = None,
) -> bool:
    """Fold the run's events after ``index.events`` (up to ``stop``) into it.

    With ``batch``, at most that many: True when the fold stopped there
    (the run's end is then not checked yet: the next batch, in another
    transaction, goes on from ``index.events`` and ``index.head``, checking
    the chain across the two). False when the fold is complete.

    Raises:
        JournalCorruptError: a damaged event, or an outcome without a request.
    """
    end = stop
    if batch is not None and (stop is None or stop > index.events + batch):
        end = index.events + batch
    cursor = txn.cursor(db=dbs[jf.DB_EVENTS])
    try:
        if cursor.set_range(jf.event_key(jf.run_prefix(run_id), index.events)):
            index.fold_records(run_id, cursor, end)
    except jf.DamagedEvent as exc:
        raise damaged(run_id, exc.seq, exc.key, exc.what) from None
    except jf.OrphanOutcome as exc:
        raise orphaned(run_id, exc) from None
    if end != stop and index.events == end:
        return True
    if stop is None or index.events < stop:
        check_end(txn, dbs, run_id, index.events, index.head)
    return False


def read_checkpoint(
    txn: Any,
    dbs: dict[bytes, Any],
    run_id: str,
    stop: int | None,
    taken: list[bytes] | None = None,
) -> jf.CallIndex | None:
    """The run's checkpoint as an index, if it is valid and usable (JF-105).

    A checkpoint is derived data: one that is damaged or does not match
    the chain is not used (the events are folded instead) and is reported
    by ``verify``. ``taken`` holds the record when the caller read it
    already (in an earlier transaction: the run's events are immutable and
    the checkpoint is checked against them here); it is taken out of the
    list, so its bytes are freed before the index's dict is built.
    """
    prefix = jf.run_prefix(run_id)
    raw = taken.pop() if taken else txn.get(prefix, db=dbs[jf.DB_CHECKPOINTS])
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
    index = overlay_index(base)
    try:
        fold_events(txn, dbs, run_id, index, None)
    except JournalCorruptError as exc:
        # Never lose the events being appended over derived data.
        _log.warning("run %r: no checkpoint written: %s", run_id, exc)
        return 0
    txn.put(jf.run_prefix(run_id), seal_index(run_id, index), db=dbs[jf.DB_CHECKPOINTS])
    return index.events


def overlay_index(base: jf.CallIndex) -> jf.CallIndex:
    """A new index equal to ``base`` whose folds never write ``base``'s entries.

    Its calls are a :class:`_TailCalls` over ``base``'s; for an empty base (a
    fresh run's) a plain dict, whose lookups are C calls.
    """
    index = jf.CallIndex()
    index.calls = _TailCalls(base.calls) if base.calls else {}
    index.logs = set(base.logs)
    index.signals = list(base.signals)
    index.consumed_signals = set(base.consumed_signals)
    index.started = base.started
    index.last_event = base.last_event
    index.events = base.events
    index.head = base.head
    return index


def seal_index(run_id: str, index: jf.CallIndex) -> bytearray:
    """The sealed checkpoint record of ``index`` (its calls: a dict or a _TailCalls)."""
    overlay = index.calls
    if not isinstance(overlay, _TailCalls):
        return jf.seal_checkpoint(index.to_checkpoint(run_id, jf.FORMAT_VERSION))
    index.calls = {}  # the overlay is read below, not through the index
    try:
        checkpoint = index.to_checkpoint(run_id, jf.FORMAT_VERSION)
    finally:
        index.calls = overlay
    checkpoint.keys, checkpoint.calls = overlay.merged()
    # The checkpoint's lists go with this frame: before LMDB copies the record.
    return jf.seal_checkpoint(checkpoint)


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
