"""Loading a run's call index in read transactions of bounded size.

A cold resume folds every event of the run (there is no checkpoint yet).
LMDB reads through a shared read-only map of ``data.mdb``, and every page a
read touches stays mapped, counted in the process's RSS, while the
environment is open: a fold of a million events kept 230 MB of the file
mapped, almost half of the cold resume's peak (issue 17). So a long fold
goes on in batches of :data:`FOLD_BATCH_EVENTS` events, each in a read
transaction of its own, and the map's pages are released between them
(``env.release_map``): the mapped part stays about one batch's pages.

Nothing is checked less. Each batch goes on from the last one's seq and
head, so the chain is checked across batches exactly as within one
(JF-063, JF-064), and the run's end is checked against its record in the
last batch (JF-065). Between batches other writers may append to the run
(a post): the fold then reads them too, as a load started a moment later
would have. A load of up to one batch (every warm resume's tail, every run
under 131k events) is one transaction, as before, and releases nothing.

A checkpoint of :data:`DECODE_APART_BYTES` or more is read (copied out) in
one transaction and decoded in the next, after the map is released: its
pages are not mapped at the decode, the warm resume's peak. It is checked
against the chain (JF-105) there, which is immutable: nothing changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import journal_format as jf

from . import checkpoints, env as _env

FOLD_BATCH_EVENTS: Final = 1 << 17
"""Events folded per read transaction: about 30 MB of ``data.mdb``'s pages
for short sequential calls (230 bytes an event). Releasing the map costs a
``munmap`` and an ``mmap``, well under a millisecond per batch."""


DECODE_APART_BYTES: Final = 8 << 20
"""A checkpoint this large is read in one transaction and decoded in the
next, after the map's pages are released (about 130k calls)."""


class _Inexact(Exception):
    """A later batch's keys were not as a sound run has them (``fold_exact``)."""


def load_in_batches(
    handle: _env._Handle,
    dbs: dict[bytes, Any],
    run_id: str,
    stop: int | None,
    use_checkpoint: bool,
    batch: int | None = None,
) -> tuple[jf.CallIndex, int]:
    """``checkpoints.load_index`` in batches of ``batch`` events; its result.

    ``batch`` defaults to :data:`FOLD_BATCH_EVENTS` (read at each call, so
    a test can make it small). Later batches read exactly the run's keys
    (``checkpoints.fold_exact``) as the first does; when one finds them not
    as a sound run has them, the whole load is made again with the careful
    read, whose result or error is the one given (damage only costs time).

    Raises:
        JournalCorruptError: a damaged event, naming run and seq.
    """
    if batch is None:
        batch = FOLD_BATCH_EVENTS
    try:
        return _load(handle, dbs, run_id, stop, use_checkpoint, batch, exact=True)
    except _Inexact:
        return _load(handle, dbs, run_id, stop, use_checkpoint, batch, exact=False)


def _load(
    handle: _env._Handle,
    dbs: dict[bytes, Any],
    run_id: str,
    stop: int | None,
    use_checkpoint: bool,
    batch: int,
    exact: bool,
) -> tuple[jf.CallIndex, int]:
    taken: list[bytes] = []

    def first(txn: Any) -> tuple[jf.CallIndex, int, bool] | None:
        taken.clear()  # (a body may be run again)
        raw = txn.get(jf.run_prefix(run_id), db=dbs[jf.DB_CHECKPOINTS])
        if raw is not None:
            taken.append(raw)
            if len(raw) >= DECODE_APART_BYTES:
                return None  # decoded in the next transaction
            del raw  # held by ``taken`` alone: freed once decoded
        # No checkpoint: not looked up again.
        return checkpoints.load_index(txn, dbs, run_id, stop, bool(taken), batch, taken)

    loaded = _env.read(handle, first) if use_checkpoint else None
    if loaded is None:
        if taken:
            # A long run's checkpoint: its pages were read into ``raw``
            # (copied out), so they need not stay mapped while it is decoded
            # into the index, the warm resume's peak.
            _env.release_map(handle)
        loaded = _env.read(
            handle,
            lambda txn: checkpoints.load_index(
                txn, dbs, run_id, stop, use_checkpoint, batch, taken
            ),
        )
    index, restored, more = loaded
    released = False
    while more:
        # Not released when this thread is inside a transaction already
        # (nothing may replace the map under it): the rest is then folded
        # in one go.
        released = _env.release_map(handle)
        limit = batch if released else None
        more = _env.read(handle, _folding(dbs, run_id, index, stop, limit, exact))
    if released:
        _env.release_map(handle)  # the last batch's pages too
    return index, restored


def _folding(
    dbs: dict[bytes, Any],
    run_id: str,
    index: jf.CallIndex,
    stop: int | None,
    limit: int | None,
    exact: bool,
) -> Callable[[Any], bool]:
    """A read body folding on from ``index.events`` (``limit`` events at most)."""

    def body(txn: Any) -> bool:
        if exact:
            more = checkpoints.fold_exact(txn, dbs, run_id, index, stop, limit)
            if more is None:
                raise _Inexact
            return more
        return checkpoints.fold_events(txn, dbs, run_id, index, stop, limit)

    return body
