"""Several runs' appends in one write transaction: one commit, one fsync.

An engine executing many runs at once (``asyncio.gather`` of ``run_async``, a
worker) would otherwise make one commit per run per step, and with ``fsync``
each commit is a disk flush. The run layer's shared commit pump
(``_run/group_commit.py``) gathers the runs whose events are ready in one
event-loop turn and hands them here.

Each run's append is exactly what :meth:`Store.append` would write for it
alone: its record is read in the transaction, its events are chained after
its head, its record is rewritten (and its checkpoint, when one is asked for).
Each runs in an LMDB **nested transaction** of the shared one, so a run whose
append fails (a damaged record, a malformed key, a run deleted meanwhile)
leaves nothing of itself behind and fails alone, with its own error; the
others commit. Faults of the environment (disk full, a read-only file system,
damaged pages) are not one run's: they fail the whole transaction, and every
run in it is told (nothing of it was written). A full map is grown and the
whole transaction retried, as for any write (``env.write``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import lmdb

import journal_format as jf

from . import env as _env
from .chain import AppendResult, append_events
from .running import RunningCheckpoints, write_checkpoint


@dataclasses.dataclass(slots=True)
class GroupItem:
    """One run's share of a group commit (the arguments of ``Store.append``)."""

    run_id: str
    events: list[jf.Event]
    blobs: dict[bytes, bytes]
    status: str | None = None
    counters: tuple[int, int] | None = None
    checkpoint: jf.CallIndex | RunningCheckpoints | None = None
    create: Callable[[Any], jf.RunRecord] | None = None
    """For an item that creates its run (``Store.creating``): makes the new
    run's record inside the transaction (refusing a taken id)."""


def write_group(
    handle: Any,
    dbs: dict[bytes, Any],
    record_in: Callable[[Any, str], jf.RunRecord],
    items: Sequence[GroupItem],
) -> list[AppendResult | Exception]:
    """Append every item in one write transaction; one result per item.

    An item's result is its :class:`AppendResult`, or the exception that
    refused it (nothing of that item was written). An exception raised from
    here is the whole transaction's: nothing of any item was written (a lone
    item's own failure is raised too: it is the whole transaction).
    """
    env = handle.env

    def body(txn: Any) -> list[AppendResult | Exception]:
        if len(items) == 1:  # its failure is the whole transaction's anyway
            return [_append_one(txn, dbs, record_in, items[0])]
        results: list[AppendResult | Exception] = []
        for item in items:
            try:
                # A child transaction: aborted alone if this run's part fails.
                with env.begin(write=True, parent=txn) as sub:
                    results.append(_append_one(sub, dbs, record_in, item))
            except lmdb.Error:
                raise  # the environment's fault (map full, I/O): everyone's
            except Exception as exc:  # this run's alone
                results.append(exc)
        return results

    return _env.write(handle, body)


def _append_one(
    txn: Any,
    dbs: dict[bytes, Any],
    record_in: Callable[[Any, str], jf.RunRecord],
    item: GroupItem,
) -> AppendResult:
    """What ``Store.append`` does inside its transaction, for one item."""
    create = item.create
    record = record_in(txn, item.run_id) if create is None else create(txn)
    result = append_events(
        txn, dbs, record, item.events, item.blobs, item.status, item.counters
    )
    if item.checkpoint is not None:
        covered = write_checkpoint(
            txn, dbs, item.run_id, item.checkpoint, item.events, result
        )
        result = dataclasses.replace(result, checkpointed=covered)
    return result
