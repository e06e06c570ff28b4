"""``compact``: rewrite ``data.mdb`` without its free pages, swapped in atomically.

LMDB never gives pages back to the file system: after deleting runs the file
keeps its size, and its free pages are reused by later commits. A compacting
copy (``mdb_env_copy2`` with ``MDB_CP_COMPACT``) writes only the pages in use.

The steps, each safe to be killed after:

1. take the exclusive writer lock (``writer_lock``): refused while any
   process has the journal open for writing; kept to the end, so nothing
   opens the journal meanwhile;
2. check the reachable pages (a damaged page would abort LMDB mid-copy);
3. copy with compaction into ``.compact-data.mdb.tmp`` in the journal
   directory, then ``fsync`` it (a leftover from a killed compaction is
   removed first);
4. remove ``lock.mdb``: LMDB keeps the last transaction id there, and a
   lock file of the old ``data.mdb`` must never be paired with the new one
   (the copy restarts transaction ids). No process can be pairing them now:
   openers wait for our lock. Readers that opened before keep their old
   ``lock.mdb`` and old ``data.mdb`` inode: a consistent, stale view;
5. ``os.replace`` the copy onto ``data.mdb``, then ``fsync`` the directory.

Killed before 5, the old ``data.mdb`` is whole (with no ``lock.mdb``, the next
open creates a fresh one); killed after, the new one is. Either way every
committed run is there.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import lmdb

from ..errors import JournalCorruptError, ReplayEngineError
from . import env as _env
from .files import DATA_FILE, LOCK_FILE, prepare
from .lmdb_pages import page_problems
from .writer_lock import hold_exclusive

TEMP_FILE = ".compact-data.mdb.tmp"
"""The copy being written, in the journal directory (same file system)."""


@dataclass(frozen=True)
class Compacted:
    """The size of ``data.mdb`` before and after a compaction, in bytes."""

    before: int
    after: int


def compact(path: str) -> Compacted:
    """Compact the journal at ``path`` in place (see the module doc).

    Raises:
        JournalBusyError: a process has the journal open for writing.
        ReplayEngineError: this process has it open (close that Engine).
        NotAJournalError: no journal at ``path``.
        JournalCorruptError: damaged pages; nothing was changed.
    """
    real = os.path.realpath(path)
    prepare(real, "write")
    if real in _env._registry:
        raise ReplayEngineError(
            f"cannot compact {real}: an Engine in this process has it open;"
            " close it first. Nothing was changed."
        )
    lock = hold_exclusive(real)
    try:
        data = os.path.join(real, DATA_FILE)
        before = os.path.getsize(data)
        problems = page_problems(real)
        if problems:
            raise JournalCorruptError(
                f"cannot compact {real}: {problems[0]}. Run `replay-engine verify`"
                " and restore the journal from a backup; nothing was changed."
            )
        temp = os.path.join(real, TEMP_FILE)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        _copy(real, temp, os.stat(data).st_mode & 0o777)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(real, LOCK_FILE))
        os.replace(temp, data)
        _fsync_directory(real)
        return Compacted(before=before, after=os.path.getsize(data))
    finally:
        lock.release()


def _copy(journal: str, temp: str, mode: int) -> None:
    """A compacted copy of the journal's current state in ``temp``, on disk."""
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, mode)  # the journal's own mode (owner-only by default)
        try:
            # No writer can commit (we hold the writer byte), so no lock
            # table is needed to read the newest commit: none is touched.
            env = lmdb.open(journal, readonly=True, lock=False, subdir=True, max_dbs=8)
        except lmdb.Error as exc:
            raise JournalCorruptError(
                f"cannot compact {journal}: LMDB cannot open it ({exc}); nothing"
                " was changed"
            ) from None
        try:
            env.copyfd(fd, compact=True)
        except lmdb.Error as exc:
            raise JournalCorruptError(
                f"cannot compact {journal}: the copy failed ({exc}); nothing was"
                " changed"
            ) from None
        finally:
            env.close()
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    os.close(fd)


def _fsync_directory(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
