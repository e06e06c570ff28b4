"""Retention: ``delete`` one run, ``gc`` finished runs and their blobs, ``compact``.

What each removes and why it is safe against other processes is in
``docs/store.md`` ("Retention"); the transactions are in ``_store/retention``
and ``_store/compact``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .._store.lock import RunLock
from ..errors import RunLockedError
from .base import EngineBase

if TYPE_CHECKING:
    # Imported by the methods that delete (an Engine opened to read a journal
    # never does: issue 16's start-up).
    from .._store.compact import Compacted
    from .._store.retention import Removed

FORCE_WAIT = 10.0
"""Seconds ``delete(force=True)`` waits for a stopped executor to let go of the run."""


class Retention(EngineBase):
    """``Engine``'s deleting methods: ``delete`` and ``gc``."""

    def delete(self, run_id: str, *, force: bool = False) -> Removed:
        """Delete a run: its record, events, index entries and checkpoint.

        One write transaction, under the run's lock. Blobs stay (they may be
        shared with forks or identical payloads of other runs): ``gc`` sweeps
        those no run refers to. A fork keeps its own copy of the events it
        shares with its parent, so a parent can be deleted.

        Args:
            run_id: the run.
            force: delete a run that is executing: it is cancelled first
                (``Engine.cancel``, when this engine has it) and the executor
                is waited for, up to :data:`FORCE_WAIT` seconds.

        Raises:
            RunNotFoundError: no such run.
            RunLockedError: the run is executing (and ``force`` is not
                given, or the executor did not stop in time); nothing deleted.
            JournalWriteError: the engine was opened read-only.
        """
        self._store.require_run(run_id)
        self._store._check_writable()
        try:
            lock = RunLock(self.path, run_id)
        except RunLockedError as exc:
            if not force:
                exc.args = (
                    f"{exc} Nothing was deleted: deleting a running run needs"
                    f" `replay-engine delete {run_id} --force` (delete(force=True)),"
                    " which cancels it first.",
                )
                raise
            self._stop_for_delete(run_id)
            lock = _wait_for_lock(self.path, run_id, FORCE_WAIT)
        from .._store.retention import delete_run

        try:
            removed = delete_run(self._store, run_id)
            with contextlib.suppress(OSError):
                os.unlink(lock.path)  # the holder note of a run that is gone
            return removed
        finally:
            lock.release()

    def _stop_for_delete(self, run_id: str) -> None:
        """Ask the run's executor to stop before ``delete(force=True)``.

        The hook for ``Engine.cancel`` (issue 13, H3): with it, the run is
        recorded as cancelled and its executor stops within a second; without
        it, ``delete`` only waits (bounded) for the executor to finish.
        """
        cancel = getattr(self, "cancel", None)
        if callable(cancel):
            cancel(run_id, reason="deleted (delete --force)")

    def gc(
        self,
        finished_before: _dt.datetime,
        *,
        statuses: Iterable[str] | None = None,
        dry_run: bool = False,
    ) -> Removed:
        """Delete finished runs last updated before a time, then sweep unused blobs.

        Runs of a terminal status (``completed``, ``failed``, ``cancelled``,
        ``timed_out``; or only ``statuses``) whose last update is before
        ``finished_before`` (a naive datetime is UTC) are deleted, skipping
        any an executor holds; then every blob no remaining event or
        checkpoint refers to is deleted (mark and sweep). Both in one write
        transaction. With ``dry_run`` nothing is written: the result says
        what would be removed.

        Raises:
            ValueError: a status that is not terminal.
            JournalCorruptError: a record cannot be decoded; nothing deleted.
        """
        from .._store.retention import TERMINAL, collect

        chosen = tuple(TERMINAL if statuses is None else statuses)
        wrong = [s for s in chosen if s not in TERMINAL]
        if wrong:
            raise ValueError(
                f"gc deletes only finished runs: {', '.join(map(repr, wrong))} is"
                f" not one of {', '.join(TERMINAL)}"
            )
        if finished_before.tzinfo is None:
            finished_before = finished_before.replace(tzinfo=_dt.UTC)
        before_ns = int(finished_before.timestamp() * 1e9)
        return collect(
            self._store, before_ns=before_ns, statuses=chosen, dry_run=dry_run
        )


def compact_journal(path: str) -> Compacted:
    """Compact the journal at ``path``: an LMDB copy without free pages, swapped in.

    Refused while any process has the journal open for writing (an
    ``Engine`` not opened ``read_only``, a worker, a ``run``); while it runs,
    opening the journal waits for it. Readers that opened the journal before
    keep reading the old file (a consistent, older view) until they reopen.
    A process killed at any point leaves the old or the new journal, whole.

    Raises:
        JournalBusyError: a process has the journal open for writing.
        ReplayEngineError: this process has it open (close that Engine).
        NotAJournalError: no journal at ``path``.
        JournalCorruptError: the journal has damaged pages; nothing changed.
    """
    from .._store.compact import compact

    return compact(path)


def _wait_for_lock(path: str, run_id: str, wait: float) -> RunLock:
    deadline = time.monotonic() + wait
    while True:
        try:
            return RunLock(path, run_id)
        except RunLockedError as exc:
            if time.monotonic() >= deadline:
                exc.args = (
                    f"{exc} delete --force waited {wait:.0f}s for it to stop;"
                    " nothing was deleted. Stop that process (or cancel the"
                    " run) and try again.",
                )
                raise
        time.sleep(0.05)
