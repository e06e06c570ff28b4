"""One executor per run across processes: a kernel lock per run.

The kernel drops the lock when its holder dies, so a lock left by a SIGKILLed
process is recovered on the next attempt with no stale-lock heuristics.

Where the lock lives matters. A lock on a per-run file can be fooled: a
cleanup script that deletes ``locks/r1.lock`` while its holder runs lets the
next process create a fresh file, lock that, and execute the run a second
time. So on Linux the lock is an open-file-description lock (``F_OFD_SETLK``)
on one byte of ``data.mdb`` chosen by the run id: a file nobody can delete
without deleting the journal itself. OFD locks, like ``flock``, belong to the
open file description (two engines in one process exclude each other, and
closing some other descriptor of the file releases nothing). Elsewhere, the
per-run file is ``flock``ed, as before.

``locks/<run>.lock`` names the holder (pid, host, since) for the error the
loser gets; it is opened without following links and must be a regular file,
so a planted symlink cannot make us write anywhere else.

A task that ``fork()``s would hand the lock's descriptors to its child, which
could outlive the executor and keep the run locked: the descriptors are closed
in every child (``os.register_at_fork``), and are close-on-exec.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import json
import os
import stat
import struct
import weakref

import blake3

from journal_format import check_run_id

from ..errors import NotAJournalError, RunLockedError
from .files import DATA_FILE

_OFD_SETLK: int | None = getattr(fcntl, "F_OFD_SETLK", None)
# struct flock on Linux (64-bit off_t): l_type, l_whence, l_start, l_len, l_pid.
_FLOCK = struct.Struct("hhqqi")
_LOCK_REGION = 1 << 40
"""Run locks live at offsets from 2**40 up: far beyond any LMDB map."""

_held: weakref.WeakSet[RunLock] = weakref.WeakSet()


def hostname() -> str:
    """This machine's name, as lock holder notes and execution events record it.

    ``socket`` is imported here, not at start-up: opening a journal to read it
    (the CLI's status, runs, pending) does not need it (issue 16).
    """
    import socket

    return socket.gethostname()


class RunLock:
    """An exclusive lock on executing one run; release it with :meth:`release`.

    Raises:
        RunLockedError: another process (or engine) holds it.
        NotAJournalError: the journal's lock files are links or not regular
            files, or the journal has no ``data.mdb``.
    """

    def __init__(self, journal_path: str, run_id: str) -> None:
        check_run_id(run_id)  # FormatError (a ValueError): no "/" or ".." in a path
        self.run_id = run_id
        directory = _locks_directory(journal_path)
        self.path = os.path.join(directory, f"{run_id}.lock")
        self._fd: int | None = None
        self._anchor: int | None = None
        info_fd = _open_regular(self.path, os.O_RDWR | os.O_CREAT, journal_path)
        try:
            if _OFD_SETLK is not None:
                self._anchor = _lock_byte(journal_path, run_id)
            else:
                fcntl.flock(info_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(info_fd)
            os.close(info_fd)
            raise _locked(run_id, holder) from None
        except BaseException:
            os.close(info_fd)
            raise
        self._fd = info_fd
        _held.add(self)
        info = {
            "pid": os.getpid(),
            "host": hostname(),
            "since": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        }
        os.ftruncate(info_fd, 0)
        os.pwrite(info_fd, json.dumps(info).encode(), 0)

    def release(self) -> None:
        """Release the lock (idempotent)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # for flock: closing the description drops the lock
        if self._anchor is not None:
            anchor, self._anchor = self._anchor, None
            os.close(anchor)  # closing the description drops the OFD lock
        _held.discard(self)

    def _forget_in_child(self) -> None:
        # The child closes its copies only: the parent's descriptions (and
        # so its lock) are untouched, and the child cannot keep them alive.
        for fd in (self._fd, self._anchor):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._fd = self._anchor = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _close_all_in_child() -> None:
    for lock in list(_held):
        lock._forget_in_child()
    _held.clear()


os.register_at_fork(after_in_child=_close_all_in_child)


def _lock_byte(journal_path: str, run_id: str) -> int:
    """An OFD write lock on ``data.mdb``'s byte for ``run_id``; its descriptor."""
    assert _OFD_SETLK is not None
    anchor = _open_regular(os.path.join(journal_path, DATA_FILE), os.O_RDWR, None)
    request = _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, _offset(run_id), 1, 0)
    try:
        fcntl.fcntl(anchor, _OFD_SETLK, request)
    except OSError as exc:
        os.close(anchor)
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            raise BlockingIOError from None
        raise
    return anchor


def _offset(run_id: str) -> int:
    digest = blake3.blake3(run_id.encode()).digest(8)
    return _LOCK_REGION + (int.from_bytes(digest, "little") >> 24)


def is_locked(journal_path: str, run_id: str) -> bool:
    """Whether some executor holds ``run_id``'s lock, taking nothing (no files made).

    Without OFD locks (not Linux) the per-run lock file is tried and released.
    """
    getlk: int | None = getattr(fcntl, "F_OFD_GETLK", None)
    if getlk is None:
        try:
            RunLock(journal_path, run_id).release()
        except RunLockedError:
            return True
        return False
    fd = _open_regular(os.path.join(journal_path, DATA_FILE), os.O_RDWR, None)
    try:
        request = _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, _offset(run_id), 1, 0)
        kind = _FLOCK.unpack(fcntl.fcntl(fd, getlk, request))[0]
    finally:
        os.close(fd)
    return bool(kind != fcntl.F_UNLCK)


def _locks_directory(journal_path: str) -> str:
    directory = os.path.join(journal_path, "locks")
    with contextlib.suppress(FileExistsError):
        os.mkdir(directory, 0o700)
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode):
        raise NotAJournalError(
            f"refusing to lock runs in {journal_path}: its locks/ is not a directory"
            " (a symbolic link?); nothing was written",
            path=journal_path,
        )
    return directory


def _open_regular(path: str, flags: int, journal: str | None) -> int:
    """Open without following a link, and only a regular file."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except FileNotFoundError:
        raise NotAJournalError(
            f"{os.path.dirname(path)} is not a journal (no {DATA_FILE})",
            path=os.path.dirname(path),
        ) from None
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        fd = -1
    if fd < 0 or not stat.S_ISREG(os.fstat(fd).st_mode):
        if fd >= 0:
            os.close(fd)
        where = journal or os.path.dirname(path)
        raise NotAJournalError(
            f"refusing to use {path}: it is a symbolic link or not a regular file."
            " A journal's files must be regular files inside it; nothing was"
            " written.",
            path=where,
        )
    return fd


def _locked(run_id: str, holder: dict[str, object]) -> RunLockedError:
    pid = int(str(holder.get("pid", -1)))
    host = str(holder.get("host", "?"))
    alive: bool | None = None
    if host == hostname() and pid > 0:
        alive = _pid_alive(pid)
    return RunLockedError(run_id, pid, host, str(holder.get("since", "?")), alive=alive)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_holder(fd: int) -> dict[str, object]:
    try:
        data = os.pread(fd, 4096, 0)
        value = json.loads(data) if data else {}
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


_OFD_GETLK: int | None = getattr(fcntl, "F_OFD_GETLK", None)


class LockProbe:
    """Who executes a run, as its lock says, without taking the lock.

    ``held``: whether a live executor holds the run lock (None: cannot tell
    here, without OFD locks). ``pid``, ``host``, ``since``: what
    ``locks/<run>.lock`` names, the holder or the last holder (a holder that
    dies, even by SIGKILL, leaves its name there). ``alive``: whether ``pid``
    is a live process (None: another host, or no pid).
    """

    # A plain class, not a dataclass: made at every CLI start, where a
    # dataclass costs about 0.4 ms to create (issue 16's start-up budget).

    __slots__ = ("alive", "held", "host", "pid", "since")

    def __init__(
        self,
        held: bool | None,
        pid: int | None = None,
        host: str | None = None,
        since: str | None = None,
        alive: bool | None = None,
    ) -> None:
        self.held = held
        self.pid = pid
        self.host = host
        self.since = since
        self.alive = alive

    def __repr__(self) -> str:
        return (
            f"LockProbe(held={self.held}, pid={self.pid}, host={self.host!r},"
            f" since={self.since!r}, alive={self.alive})"
        )


def probe(journal_path: str, run_id: str) -> LockProbe:
    """Whether the run's lock is held and by whom, writing nothing.

    The OFD lock is tested with ``F_OFD_GETLK`` on a read-only descriptor of
    ``data.mdb`` (never acquired, so a probe cannot stall or fool an
    executor); the holder's file is read with the same link checks as a
    lock's, and a missing ``locks/`` is simply no holder (nothing is created).
    """
    check_run_id(run_id)
    held: bool | None = None
    if _OFD_GETLK is not None:
        anchor = _open_regular(os.path.join(journal_path, DATA_FILE), os.O_RDONLY, None)
        try:
            digest = blake3.blake3(run_id.encode()).digest(8)
            offset = _LOCK_REGION + (int.from_bytes(digest, "little") >> 24)
            request = _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, offset, 1, 0)
            answer = fcntl.fcntl(anchor, _OFD_GETLK, request)
        finally:
            os.close(anchor)
        held = _FLOCK.unpack(answer)[0] != fcntl.F_UNLCK
    holder = _read_info(journal_path, run_id)
    pid = holder.get("pid")
    pid = pid if isinstance(pid, int) and not isinstance(pid, bool) else None
    host = holder.get("host")
    host = host if isinstance(host, str) else None
    since = holder.get("since")
    alive: bool | None = None
    if pid is not None and pid > 0 and host == hostname():
        alive = _pid_alive(pid)
    return LockProbe(
        held=held,
        pid=pid,
        host=host,
        since=since if isinstance(since, str) else None,
        alive=alive,
    )


def _read_info(journal_path: str, run_id: str) -> dict[str, object]:
    """The holder ``locks/<run>.lock`` names ({} when there is none)."""
    directory = os.path.join(journal_path, "locks")
    try:
        if not stat.S_ISDIR(os.lstat(directory).st_mode):
            return {}
    except FileNotFoundError:
        return {}
    path = os.path.join(directory, f"{run_id}.lock")
    try:
        fd = _open_regular(path, os.O_RDONLY, journal_path)
    except NotAJournalError:
        # A missing file (the run was never executed here), or a planted
        # link: neither names a holder.
        return {}
    try:
        return _read_holder(fd)
    finally:
        os.close(fd)
