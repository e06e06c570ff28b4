"""Who holds a journal: a shared lock per writer, an exclusive one for ``compact``.

``compact`` replaces ``data.mdb`` with a compacted copy. Any process that
could commit to the old file meanwhile would lose that commit, and any process
that opened the old file's ``lock.mdb`` and then the new ``data.mdb`` would
trust the old transaction id LMDB keeps there (and pick the wrong meta page).
So:

* a process that opens a journal for writing holds a **shared** OFD lock on
  one fixed byte of ``data.mdb`` (:data:`WRITER_BYTE`) for as long as its
  LMDB handle is open;
* a process that opens a journal for reading holds the same shared lock only
  while LMDB opens the files, so it never pairs an old ``lock.mdb`` with a
  new ``data.mdb``; afterwards it reads whichever inode it mapped (a reader
  that mapped the old file keeps reading the old inode: a consistent view of
  the journal as it was before the compaction, until it reopens);
* ``compact`` takes the **exclusive** lock on that byte without waiting (it
  is refused while any writer holds the journal) and keeps it through the
  swap, so nothing opens the journal meanwhile; an opener waits for it,
  bounded by :data:`OPEN_WAIT` seconds, then gets :class:`JournalBusyError`.

The byte lies far beyond any LMDB map and any run lock (run locks use offsets
``2**40 .. 2**41``, see ``lock.py``), so it never conflicts with them. OFD
locks belong to the open file description: two handles in one process
conflict like two processes, and a child that inherits the descriptor through
``fork()`` closes its copy (``os.register_at_fork``), which releases nothing.
Without OFD locks (not Linux), nothing is locked and ``compact`` is refused.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import struct
import time
import weakref

from ..errors import JournalBusyError
from .files import DATA_FILE

WRITER_BYTE = 1 << 42
"""The byte of ``data.mdb`` writers share and ``compact`` takes exclusively."""
OPEN_WAIT = 30.0
"""Seconds an open waits for a compaction to finish before giving up."""
_POLL = 0.02

_OFD_SETLK: int | None = getattr(fcntl, "F_OFD_SETLK", None)
_FLOCK = struct.Struct("hhqqi")


class _Fd:
    """One locked descriptor; closed in a forked child (the parent keeps the lock)."""

    def __init__(self, fd: int) -> None:
        self.fd: int | None = fd

    def close(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


_open_fds: weakref.WeakSet[_Fd] = weakref.WeakSet()


def _close_in_child() -> None:
    for held in list(_open_fds):
        held.close()
    _open_fds.clear()


os.register_at_fork(after_in_child=_close_in_child)


class WriterLock:
    """A lock on a journal's :data:`WRITER_BYTE`; release it with :meth:`release`."""

    def __init__(self, held: _Fd | None) -> None:
        self._held = held

    @property
    def held(self) -> bool:
        """Whether a lock is held (False: no ``data.mdb`` yet, or no OFD locks)."""
        return self._held is not None

    def release(self) -> None:
        """Release the lock (idempotent)."""
        if self._held is not None:
            held, self._held = self._held, None
            held.close()
            _open_fds.discard(held)


def hold_shared(journal: str, *, wait: float | None = None) -> WriterLock:
    """A shared lock on the writer byte of the journal's current ``data.mdb``.

    Waits (bounded by ``wait``, default :data:`OPEN_WAIT`) while a compaction
    holds the byte. A journal without ``data.mdb`` yet (being created) gets
    no lock: there is nothing to compact.

    Raises:
        JournalBusyError: a compaction still holds the journal after ``wait``.
    """
    file = os.path.join(journal, DATA_FILE)
    deadline = time.monotonic() + (OPEN_WAIT if wait is None else wait)
    while True:
        fd = _open(file, os.O_RDONLY)
        if fd is None or _OFD_SETLK is None:
            return WriterLock(None)
        if _try_lock(fd, fcntl.F_RDLCK) and _same_file(fd, file):
            return _held(fd)
        os.close(fd)
        if time.monotonic() >= deadline:
            raise JournalBusyError(
                f"the journal {journal} is being compacted (`replay-engine compact`"
                " holds it); nothing was opened. Wait for the compaction to"
                " finish and try again.",
                path=journal,
            )
        time.sleep(_POLL)


def hold_exclusive(journal: str, *, wait: float = 1.0) -> WriterLock:
    """The exclusive lock on the writer byte (for ``compact``), without blocking.

    Retries for ``wait`` seconds only, to ride over a reader that is opening
    the journal at that moment; a writer holds its lock for as long as it is
    open, so it is refused.

    Raises:
        JournalBusyError: a writer holds the journal (naming its pids when
            they can be found), or locks are not available on this system.
    """
    file = os.path.join(journal, DATA_FILE)
    if _OFD_SETLK is None:
        raise JournalBusyError(
            f"cannot compact {journal}: this system has no open-file-description"
            " locks, so a writer could not be kept out; nothing was changed",
            path=journal,
        )
    deadline = time.monotonic() + wait
    while True:
        fd = _open(file, os.O_RDWR)
        if fd is None:
            raise JournalBusyError(
                f"cannot compact {journal}: it has no {DATA_FILE}", path=journal
            )
        if _try_lock(fd, fcntl.F_WRLCK) and _same_file(fd, file):
            return _held(fd)
        inode = os.fstat(fd).st_ino
        os.close(fd)
        if time.monotonic() >= deadline:
            raise busy(journal, holders(inode))
        time.sleep(_POLL)


def busy(journal: str, pids: list[int]) -> JournalBusyError:
    """The error for a compaction refused because writers hold the journal."""
    who = (
        f"process{'es' if len(pids) > 1 else ''} {', '.join(map(str, pids))}"
        if pids
        else "another process"
    )
    return JournalBusyError(
        f"cannot compact {journal}: {who} ha{'ve' if len(pids) > 1 else 's'} it"
        " open for writing (a worker, a `run`/`resume`, or an Engine). Stop"
        " them (SIGTERM drains a worker) and run `replay-engine compact` again;"
        " nothing was changed.",
        path=journal,
        pids=pids,
    )


def holders(inode: int) -> list[int]:
    """Pids (of this user) holding a lock on :data:`WRITER_BYTE` of ``inode``.

    OFD locks carry no pid (``/proc/locks`` says -1), so each process's
    ``fdinfo`` is read: only on the error path, and bounded by the processes
    this user may inspect.
    """
    needle = f":{inode} {WRITER_BYTE} {WRITER_BYTE}"
    found: list[int] = []
    with contextlib.suppress(OSError):
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            with contextlib.suppress(OSError):
                for name in os.listdir(f"/proc/{pid}/fdinfo"):
                    with open(f"/proc/{pid}/fdinfo/{name}") as info:
                        if needle in info.read():
                            found.append(int(pid))
                            break
    return sorted(set(found) - {os.getpid()}) or sorted(set(found))


def _held(fd: int) -> WriterLock:
    held = _Fd(fd)
    _open_fds.add(held)
    return WriterLock(held)


def _open(file: str, flags: int) -> int | None:
    try:
        return os.open(file, flags | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EACCES, errno.EROFS):
            return None  # files.prepare names what is wrong; nothing to compact
        raise


def _try_lock(fd: int, kind: int) -> bool:
    assert _OFD_SETLK is not None
    request = _FLOCK.pack(kind, os.SEEK_SET, WRITER_BYTE, 1, 0)
    try:
        fcntl.fcntl(fd, _OFD_SETLK, request)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def _same_file(fd: int, file: str) -> bool:
    """Whether ``fd`` is still the journal's ``data.mdb`` (not swapped by compact)."""
    try:
        return os.stat(file, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False
