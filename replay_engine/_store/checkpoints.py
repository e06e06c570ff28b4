"""A run's call index: folded from its events, starting from its checkpoint.

A module of its own because the checkpoint is derived data with its own rules
(format spec section 12): one that is damaged or off the chain is ignored with
a warning, never trusted and never fatal (JF-105), and writing one must never
cost the events appended with it. Every function works inside the caller's
transaction: reading the index is the hot path of every resume, and a
checkpoint is written in the same commit as the append that asks for it.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec

import journal_format as jf

from ..errors import JournalCorruptError
from .chain import check_end, damaged

_log = logging.getLogger("replay_engine")


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
    restored = start.events if start is not None else 0
    index = start if start is not None else jf.CallIndex()
    fold_events(txn, dbs, run_id, index, stop)
    return index, restored


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
        raise JournalCorruptError(
            f"run {run_id!r}: {exc}. `replay-engine verify {run_id}` lists"
            " every damaged record.",
            run_id=run_id,
            seq=exc.seq,
            key=jf.key_bytes_to_text(exc.key),
        ) from None
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
        checkpoint = jf.decode_checkpoint(jf.unseal(raw)[1])
    except jf.FormatError as exc:
        _log.warning(
            "run %r: its checkpoint is damaged (%s); reading every event"
            " instead. `replay-engine verify %s` reports it.",
            run_id,
            exc,
            run_id,
        )
        return None
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

    ``base`` is left as it is (the runtime may still be using it): a copy,
    through the checkpoint's own encoding, is brought up to date. Returns 0
    when no checkpoint was written.
    """
    version = jf.FORMAT_VERSION
    index = _copy_for_tail(txn, dbs, run_id, base)
    try:
        fold_events(txn, dbs, run_id, index, None)
    except JournalCorruptError as exc:
        # Never lose the events being appended over derived data.
        _log.warning("run %r: no checkpoint written: %s", run_id, exc)
        return 0
    txn.put(
        jf.run_prefix(run_id),
        jf.seal(jf.encode_checkpoint(index.to_checkpoint(run_id, version))),
        db=dbs[jf.DB_CHECKPOINTS],
    )
    return index.events


def _copy_for_tail(
    txn: Any, dbs: dict[bytes, Any], run_id: str, base: jf.CallIndex
) -> jf.CallIndex:
    """A copy of ``base`` into which the run's later events can be folded.

    Folding mutates only the entries at the keys of the events it folds, so
    the copy shares every other entry with ``base`` and copies those: the
    containers are new, the entries the tail touches are copies. (It was a
    round trip through the checkpoint encoding, a copy of every entry: on the
    first commit after a cold resume that cost more than the fold of the tail.)
    The tail is decoded here without checks only to find its keys; the fold
    that follows checks every record.
    """
    index = jf.CallIndex()
    calls = index.calls = dict(base.calls)
    index.logs = set(base.logs)
    index.signals = list(base.signals)
    index.consumed_signals = set(base.consumed_signals)
    index.started = base.started
    index.last_event = base.last_event
    index.events = base.events
    index.head = base.head
    prefix = jf.run_prefix(run_id)
    cursor = txn.cursor(db=dbs[jf.DB_EVENTS])
    if not cursor.set_range(jf.event_key(prefix, base.events)):
        return index
    copy = msgspec.structs.replace
    for key, value in cursor:
        if not key.startswith(prefix):
            break
        try:
            event = jf.decode_envelope(value[jf.ADDRESS_SIZE :]).event
        except jf.FormatError:
            break  # damaged: the checked fold reports it
        call_key: bytes | None = getattr(event, "key", None)
        if call_key is not None and (entry := calls.get(call_key)) is not None:
            calls[call_key] = copy(entry)
    return index
