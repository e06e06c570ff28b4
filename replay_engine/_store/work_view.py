"""``WorkView``: what a worker reads and claims in a journal.

The active runs (from the ``active`` index, never a scan of every run
record), the change counter a worker polls, and the claim of a queued run
within its queue's limits. A part of :class:`~replay_engine._store.store.Store`
of its own because it is the worker's whole view of storage.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import journal_format as jf

from . import active as _active, env as _env

__all__ = ["WorkView"]


class WorkView:
    """The worker's part of ``Store`` (mixed into it)."""

    _dbs: dict[bytes, Any]
    _handle: _env._Handle
    commits: int

    def _check_writable(self) -> None:  # pragma: no cover - Store's wins
        raise NotImplementedError

    def active_runs(
        self,
        *,
        records: bool = True,
        queued_heads: int | None = None,
        accept: Callable[[jf.RunRecord], bool] | None = None,
    ) -> list[_active.ActiveRun]:
        """The runs whose status is queued, running or waiting.

        Read from the ``active`` index in one read transaction, with each run's
        record when ``records``; never a scan of every run record (except on
        an old journal opened read-only, which has no index). ``queued_heads``
        and ``accept``: read only the oldest queued runs of each queue (see
        :func:`.active.read`).
        """
        dbs = self._dbs
        return _env.read(
            self._handle,
            lambda txn: _active.read(
                txn, dbs, records=records, queued_heads=queued_heads, accept=accept
            ),
        )

    def change_counter(self) -> int:
        """The id of the journal's latest committed transaction, as a reader sees it.

        Any process's commit moves it, so polling it (about a microsecond)
        tells a worker when to look again. It is the snapshot id of a read
        transaction, not ``env.info()["last_txnid"]``: LMDB writes (and, with
        fsync, flushes) the meta page before it lets new readers see the
        commit, so ``last_txnid`` can be ahead of what a read right after it
        shows, and a look made then would miss the change it was told of.
        """
        value: int = _env.read(self._handle, lambda txn: txn.id())
        return value

    def claim_queued(self, run_id: str, limits: _active.Limits) -> _active.ClaimOutcome:
        """Mark a queued run ``running`` if its queue's limits allow, atomically.

        ``"claimed"``, or ``"gone"`` (no longer queued) / ``"limited"`` (a
        limit is reached), writing nothing. See :func:`.active.claim`.
        """
        dbs = self._dbs

        def body(txn: Any) -> _active.ClaimOutcome:
            self._check_writable()
            return _active.claim(txn, dbs, run_id, limits)

        result = _env.write(self._handle, body)
        self.commits += 1
        return result
