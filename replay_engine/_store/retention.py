"""Retention: deleting runs, and sweeping the blobs no run refers to any more.

Every decision is one LMDB write transaction, so a process killed at any
point leaves the journal as it was before or after it, never in between:

* :func:`delete_run` removes a run's record and every record under its prefix
  (``events``, ``keys``, ``checkpoints``, and any other run-prefixed database
  listed in :data:`RUN_PREFIXED_DBS` that this journal has).
* :func:`collect` deletes the finished runs it selects **and** sweeps the
  blobs in the same transaction: it marks every address referred to by every
  event and checkpoint left in the journal, then deletes the unmarked blobs.
  LMDB runs one write transaction at a time across processes, so no writer
  can add a run that refers to an existing blob between the mark and the
  sweep: such a writer commits before the mark (and is marked) or after the
  sweep (and its append stores the blob again: appends always put the blobs
  their events name, ``overwrite=False`` only skipping identical ones).

Blobs are content-addressed and shared (a fork shares its parent's; runs with
identical inputs share one), so :func:`delete_run` never removes a blob.
A fork holds its own copies of the events it shares with its parent (see
``Store.fork_run``), so deleting a parent leaves its forks whole.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import journal_format as jf

from ..errors import JournalCorruptError, RunNotFoundError
from . import env as _env
from .lock import is_locked
from .records import decode_run
from .store import Store
from .verify import _refs_of

RUN_PREFIXED_DBS: tuple[bytes, ...] = (
    jf.DB_EVENTS,
    jf.DB_KEYS,
    jf.DB_CHECKPOINTS,
)
"""Databases whose keys start with ``run_prefix(run_id)``; absent ones are skipped."""

TERMINAL = tuple(sorted(jf.FINISHED_STATUSES))
"""Statuses ``gc`` may delete: runs no executor or worker will touch again."""


@dataclass
class Removed:
    """What a deletion removed (or, for a dry run, would remove)."""

    runs: list[str] = field(default_factory=list)
    events: int = 0
    records: int = 0
    """Index entries and checkpoints (and other run-prefixed records)."""
    blobs: int = 0
    bytes: int = 0
    """Bytes of the removed records' keys and values (events, blobs …)."""
    skipped: list[str] = field(default_factory=list)
    """Runs that matched but were skipped: an executor holds their lock."""


def delete_run(store: Store, run_id: str) -> Removed:
    """Delete one run's records in one write transaction (blobs stay).

    The caller holds the run's lock, so no executor appends meanwhile.

    Raises:
        RunNotFoundError: there is no such run (checked inside the transaction).
    """
    store._check_writable()

    def body(txn: Any) -> Removed:
        removed = Removed()
        if txn.get(run_id.encode(), db=store._dbs[jf.DB_RUNS]) is None:
            raise RunNotFoundError(
                run_id, f"no run {run_id!r} in {store.real_path}; nothing was deleted"
            )
        _delete_in(txn, store._dbs, run_id, removed)
        return removed

    result: Removed = _env.write(store._handle, body)
    store.commits += 1
    return result


def collect(
    store: Store,
    *,
    before_ns: int,
    statuses: Iterable[str],
    dry_run: bool = False,
) -> Removed:
    """Delete finished runs last updated before ``before_ns``, then sweep blobs.

    One write transaction for both (see the module doc). Runs whose lock an
    executor holds are skipped (a failed run being resumed). With
    ``dry_run`` the same transaction computes everything and is aborted.

    Raises:
        JournalCorruptError: a record left in the journal cannot be decoded,
            so what it refers to is unknown: nothing is deleted.
    """
    wanted = set(statuses)
    if not dry_run:
        store._check_writable()
    dbs = store._dbs

    def body(txn: Any) -> Removed:
        removed = Removed()
        for k, v in list(txn.cursor(db=dbs[jf.DB_RUNS])):
            run_id = k.decode()
            record = decode_run(run_id, v)
            if record.status not in wanted or record.updated_ns >= before_ns:
                continue
            if is_locked(store.real_path, run_id):
                removed.skipped.append(run_id)
                continue
            _delete_in(txn, dbs, run_id, removed)
        _sweep(txn, dbs, removed, store.real_path)
        if dry_run:
            raise _DryRun(removed)
        return removed

    try:
        result: Removed = _env.write(store._handle, body)
    except _DryRun as done:
        return done.removed
    store.commits += 1
    return result


class _DryRun(Exception):
    """Aborts a dry run's transaction, carrying what it would have removed."""

    def __init__(self, removed: Removed) -> None:
        self.removed = removed
        super().__init__("dry run")


def _delete_in(txn: Any, dbs: dict[bytes, Any], run_id: str, out: Removed) -> None:
    prefix = jf.run_prefix(run_id)
    for name in RUN_PREFIXED_DBS:
        db = dbs.get(name)
        if db is None:
            continue
        count, size = _delete_prefix(txn, db, prefix)
        if name == jf.DB_EVENTS:
            out.events += count
        else:
            out.records += count
        out.bytes += size
    raw = txn.pop(run_id.encode(), db=dbs[jf.DB_RUNS])
    out.bytes += len(run_id) + len(raw or b"")
    active = dbs.get(jf.DB_ACTIVE)  # keyed by run id; absent in a read-only old journal
    if active is not None:
        txn.delete(run_id.encode(), db=active)
    out.runs.append(run_id)


def _delete_prefix(txn: Any, db: Any, prefix: bytes) -> tuple[int, int]:
    """Delete every record whose key starts with ``prefix`` (every duplicate too)."""
    cursor = txn.cursor(db=db)
    count = size = 0
    if not cursor.set_range(prefix):
        return 0, 0
    while cursor.key().startswith(prefix):
        count += 1
        size += len(cursor.key()) + len(cursor.value())
        # delete() moves to the next record; False at the end of the database.
        if not cursor.delete() or not cursor.key():
            break
    return count, size


def _sweep(txn: Any, dbs: dict[bytes, Any], out: Removed, path: str) -> None:
    """Mark every address the journal's records refer to; delete the rest."""
    marked = _marked(txn, dbs, path)
    cursor = txn.cursor(db=dbs[jf.DB_BLOBS])
    if not cursor.first():
        return
    while True:
        address = cursor.key()
        if address in marked:
            if not cursor.next():
                return
            continue
        out.blobs += 1
        out.bytes += len(address) + len(cursor.value())
        if not cursor.delete() or not cursor.key():
            return


def _marked(txn: Any, dbs: dict[bytes, Any], path: str) -> set[bytes]:
    """Every blob address an event or checkpoint still in the journal refers to.

    Every event counts, also one whose run record is missing (damage that
    ``verify`` reports): its blobs may be needed to repair it.
    """
    marked: set[bytes] = set()
    decode = jf.decode_envelope
    for key, value in txn.cursor(db=dbs[jf.DB_EVENTS]):
        try:
            event = decode(bytes(value[jf.ADDRESS_SIZE :])).event
        except jf.FormatError as exc:
            raise _unreadable(path, key, f"event: {exc}") from None
        marked.update(_refs_of(event))
    for key, value in txn.cursor(db=dbs[jf.DB_CHECKPOINTS]):
        try:
            checkpoint = jf.decode_checkpoint(jf.unseal(value)[1])
        except jf.FormatError as exc:
            raise _unreadable(path, key, f"checkpoint: {exc}") from None
        marked.update(_checkpoint_refs(checkpoint))
    # Inline references never name a blob; leaving them in the set is harmless.
    return marked


def _checkpoint_refs(checkpoint: jf.Checkpoint) -> list[bytes]:
    """The payload references a checkpoint holds (all also in its events)."""
    refs: list[bytes] = []
    for call in checkpoint.calls:
        refs.append(call.args)
        if call.result is not None:
            refs.append(call.result)
    refs.extend(payload for _, _, payload in checkpoint.signals)
    for event in (checkpoint.started, checkpoint.last_event):
        if event is not None:
            refs.extend(_refs_of(event))
    return refs


def _unreadable(path: str, key: bytes, what: str) -> JournalCorruptError:
    run = key[1 : 1 + key[0]].decode(errors="replace") if key else "?"
    return JournalCorruptError(
        f"gc stopped: a record of run {run!r} in {path} cannot be decoded ({what}),"
        " so the blobs it refers to are unknown and none was deleted. Run"
        " `replay-engine verify`, then delete or repair that run.",
        run_id=run,
    )
